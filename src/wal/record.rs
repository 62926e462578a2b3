//! WAL record framing: how one record becomes bytes and how bytes become a record again.
//!
//! Owns the byte format, the checksums (CRC32C, chained from record to record) and the
//! classification of a bad record as *torn* (a write that never completed: the expected outcome
//! of a crash) or *corrupt* (bytes that were once written correctly and have changed since, or
//! were never written by this code). It does not know about files, segments or raft: records
//! carry plain integers and opaque byte payloads (an entry's `data` is the caller's encoding of
//! a raft entry, `Metadata` is whatever the caller wants to keep with every segment).
//!
//! Encoding never panics: a body that does not fit the length field is an [`EncodeError`].
//! Decoding never panics on any input: it returns [`Decoded::End`], a record, or a
//! [`DecodeError`].

use std::fmt;

/// Bytes in a record header.
pub const HEADER_LEN: usize = 16;
/// Records start at multiples of this many bytes (file offsets), so a header never straddles
/// a 512-byte sector: under sector-atomic writes a header is either wholly written or all zero.
pub const RECORD_ALIGN: usize = 16;
/// The unit of atomicity assumed of the device when telling torn writes from corruption.
pub const SECTOR: usize = 512;
/// Largest body (type byte + payload) a record may carry; larger lengths are refused when
/// encoding and reported as corruption when decoding.
pub const MAX_BODY_LEN: usize = 1 << 30;

/// Record type tags (the first body byte). Zero is never written, so zeroed (preallocated)
/// space can never be mistaken for a record.
pub mod tag {
    pub const METADATA: u8 = 1;
    pub const ENTRY: u8 = 2;
    pub const HARD_STATE: u8 = 3;
    pub const SNAPSHOT: u8 = 4;
    pub const CRC: u8 = 5;
}

/// One WAL record, borrowing its payload (from the caller when encoding, from the file buffer
/// when decoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// Opaque bytes written at the start of every segment (member id, cluster id, ...).
    Metadata(&'a [u8]),
    /// A raft log entry; `data` is opaque here.
    Entry {
        index: u64,
        term: u64,
        data: &'a [u8],
    },
    /// Raft's hard state.
    HardState { term: u64, vote: u64, commit: u64 },
    /// Marks that a snapshot at `index`/`term` exists (etcd's walpb.Snapshot).
    Snapshot { index: u64, term: u64 },
    /// First record of every segment: the chained CRC carried over from the previous segment.
    Crc(u32),
}

impl Record<'_> {
    fn tag(&self) -> u8 {
        match self {
            Record::Metadata(_) => tag::METADATA,
            Record::Entry { .. } => tag::ENTRY,
            Record::HardState { .. } => tag::HARD_STATE,
            Record::Snapshot { .. } => tag::SNAPSHOT,
            Record::Crc(_) => tag::CRC,
        }
    }

    fn payload_len(&self) -> usize {
        match self {
            Record::Metadata(m) => m.len(),
            Record::Entry { data, .. } => 16usize.saturating_add(data.len()),
            Record::HardState { .. } => 24,
            Record::Snapshot { .. } => 16,
            Record::Crc(_) => 4,
        }
    }
}

/// The record's body would not fit in a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    /// Body length that was refused.
    pub body_len: usize,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WAL record body of {} bytes exceeds the limit of {} bytes",
            self.body_len, MAX_BODY_LEN
        )
    }
}

impl std::error::Error for EncodeError {}

/// Rounds `n` up to the record alignment (saturating: never panics).
pub fn align_record(n: usize) -> usize {
    n.saturating_add(RECORD_ALIGN - 1) & !(RECORD_ALIGN - 1)
}

/// Bytes a record with this body length occupies in the log, padding included.
pub fn frame_len(body_len: usize) -> usize {
    align_record(HEADER_LEN.saturating_add(body_len))
}

/// Bytes `rec` will occupy once framed (padding included).
pub fn framed_size(rec: &Record<'_>) -> usize {
    frame_len(1usize.saturating_add(rec.payload_len()))
}

// Format: one record, all integers little-endian, starting at a 16-byte aligned file offset:
//
//   offset  size  field
//        0     4  len    body length in bytes (type byte + payload), 1..=MAX_BODY_LEN
//        4     4  prev   the `crc` of the previous record in the log (the chain); the first
//                        record of a new WAL has prev 0
//        8     4  crc    crc32c over the body, seeded with `prev` (crc32c_append(prev, body))
//       12     4  hcrc   crc32c over bytes 0..12 (guards the length, so a flipped length bit is
//                        "corrupt header", never a bogus frame that swallows later records)
//       16   len  body   u8 type tag, then the payload:
//                          METADATA(1)   opaque bytes
//                          ENTRY(2)      u64 index, u64 term, opaque data
//                          HARD_STATE(3) u64 term, u64 vote, u64 commit
//                          SNAPSHOT(4)   u64 index, u64 term
//                          CRC(5)        u32 crc (equal to `prev`)
//        …     …  zero padding up to the next multiple of 16
//
// Sixteen zero bytes where a header should be mean "end of log": segments are preallocated
// (zero-filled), and a valid header is never all zero (len >= 1).
//
// Why 16 header bytes rather than a minimal [len][type][crc]: `hcrc` means a damaged length
// is reported as a damaged header instead of being trusted (a flipped high length bit would
// otherwise make a record in the middle of the log look like a torn write swallowing everything
// after it); `prev` lets recovery verify any record on its own when it must decide whether
// valid data follows damage; 16-byte alignment keeps every header inside one 512-byte sector.
//
// The chain makes a record from an older incarnation of the file (or another log) fail the
// `prev` check; storing `prev` explicitly also lets a single record be verified on its own,
// which recovery uses to tell whether valid data follows a damaged record.

/// Appends `rec`, framed and padded, to `out`, chaining from `prev`. Returns the record's crc,
/// which is the `prev` of the next record. `out.len()` should be a multiple of
/// [`RECORD_ALIGN`] (it is the file offset modulo the block size). On error `out` is unchanged.
pub fn encode(out: &mut Vec<u8>, prev: u32, rec: &Record<'_>) -> Result<u32, EncodeError> {
    let body_len = 1usize.saturating_add(rec.payload_len());
    if body_len > MAX_BODY_LEN {
        return Err(EncodeError { body_len });
    }
    let start = out.len();
    out.reserve(frame_len(body_len));
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    out.push(rec.tag());
    match rec {
        Record::Metadata(m) => out.extend_from_slice(m),
        Record::Entry { index, term, data } => {
            out.extend_from_slice(&index.to_le_bytes());
            out.extend_from_slice(&term.to_le_bytes());
            out.extend_from_slice(data);
        }
        Record::HardState { term, vote, commit } => {
            out.extend_from_slice(&term.to_le_bytes());
            out.extend_from_slice(&vote.to_le_bytes());
            out.extend_from_slice(&commit.to_le_bytes());
        }
        Record::Snapshot { index, term } => {
            out.extend_from_slice(&index.to_le_bytes());
            out.extend_from_slice(&term.to_le_bytes());
        }
        Record::Crc(c) => out.extend_from_slice(&c.to_le_bytes()),
    }
    let body_start = start + HEADER_LEN;
    let crc = crc32c::crc32c_append(prev, &out[body_start..]);
    // body_len <= MAX_BODY_LEN < u32::MAX, checked above.
    let len32 = body_len as u32;
    out[start..start + 4].copy_from_slice(&len32.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&prev.to_le_bytes());
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
    let hcrc = crc32c::crc32c(&out[start..start + 12]);
    out[start + 12..start + 16].copy_from_slice(&hcrc.to_le_bytes());
    let end = start + frame_len(body_len);
    out.resize(end, 0);
    Ok(crc)
}

/// A successful decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// Zeroes (or nothing) where the next header would be: the end of the log.
    End,
    /// A valid record.
    Record {
        record: Record<'a>,
        /// Offset of the next record (this one's frame end, padding included).
        next: usize,
        /// This record's crc: the `prev` the next record must carry.
        crc: u32,
    },
}

/// Why the bytes at an offset are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Incomplete at the end of the data, or partly unwritten (a whole sector of the body is
    /// zero): the signature of a write interrupted by a crash.
    Torn { reason: String },
    /// The bytes were written but are not what was written: checksum, chain, tag or shape.
    Corrupt {
        reason: String,
        /// Where the next record would start, if the header (and so the length) is trustworthy.
        resume_at: Option<usize>,
    },
}

impl DecodeError {
    pub fn reason(&self) -> &str {
        match self {
            DecodeError::Torn { reason } | DecodeError::Corrupt { reason, .. } => reason,
        }
    }

    pub fn is_torn(&self) -> bool {
        matches!(self, DecodeError::Torn { .. })
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Torn { reason } => write!(f, "torn record: {reason}"),
            DecodeError::Corrupt { reason, .. } => write!(f, "corrupt record: {reason}"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// True if some 512-byte sector (aligned to offsets in `data`, which start at file offset 0)
/// overlapping `[start, end)` is entirely zero in `data`; bytes past the end of `data` count
/// as zero.
fn overlaps_zero_sector(data: &[u8], start: usize, end: usize) -> bool {
    if end <= start {
        return false;
    }
    let first = start / SECTOR;
    let last = (end - 1) / SECTOR;
    (first..=last).any(|s| {
        let lo = (s * SECTOR).min(data.len());
        let hi = (s * SECTOR).saturating_add(SECTOR).min(data.len());
        all_zero(&data[lo..hi])
    })
}

/// Decodes the record at `off` in `data`, where `data[0]` is at a file offset that is a
/// multiple of [`SECTOR`] (a whole segment, as recovery reads it). With `expected_prev`, the
/// record's `prev` must equal it (the chain); with `None` any chain value is accepted (the
/// first record read, or a stand-alone check).
pub fn decode(
    data: &[u8],
    off: usize,
    expected_prev: Option<u32>,
) -> Result<Decoded<'_>, DecodeError> {
    let rest = match data.get(off..) {
        Some(r) => r,
        None => return Ok(Decoded::End),
    };
    if rest.len() < HEADER_LEN {
        return if all_zero(rest) {
            Ok(Decoded::End)
        } else {
            Err(DecodeError::Torn {
                reason: format!("header cut short ({} of {HEADER_LEN} bytes)", rest.len()),
            })
        };
    }
    let h = &rest[..HEADER_LEN];
    if all_zero(h) {
        return Ok(Decoded::End);
    }
    if crc32c::crc32c(&h[..12]) != le32(h, 12) {
        return Err(DecodeError::Corrupt {
            reason: "header checksum mismatch".into(),
            resume_at: None,
        });
    }
    let len = le32(h, 0) as usize;
    if len == 0 || len > MAX_BODY_LEN {
        return Err(DecodeError::Corrupt {
            reason: format!("invalid body length {len}"),
            resume_at: None,
        });
    }
    let prev = le32(h, 4);
    let crc = le32(h, 8);
    let body_start = off + HEADER_LEN;
    let body_end = body_start + len;
    let next = off + frame_len(len);
    let body = match data.get(body_start..body_end) {
        Some(b) => b,
        None => {
            return Err(DecodeError::Torn {
                reason: format!(
                    "record of {len} body bytes extends past the end of the data ({} bytes)",
                    data.len()
                ),
            })
        }
    };
    if crc32c::crc32c_append(prev, body) != crc {
        if overlaps_zero_sector(data, off, body_end) {
            return Err(DecodeError::Torn {
                reason: "checksum mismatch with an unwritten (all-zero) sector in the record"
                    .into(),
            });
        }
        return Err(DecodeError::Corrupt {
            reason: "checksum mismatch".into(),
            resume_at: Some(next),
        });
    }
    let corrupt = |reason: String| DecodeError::Corrupt {
        reason,
        resume_at: Some(next),
    };
    if let Some(p) = expected_prev {
        if p != prev {
            return Err(corrupt(format!(
                "crc chain broken (record continues {prev:#010x}, log is at {p:#010x})"
            )));
        }
    }
    let pad = data.get(body_end..next.min(data.len())).unwrap_or(&[]);
    if !all_zero(pad) {
        return Err(corrupt("non-zero padding".into()));
    }
    let payload = &body[1..];
    let shape = |want: usize, name: &str| -> Result<(), DecodeError> {
        if payload.len() == want {
            Ok(())
        } else {
            Err(corrupt(format!(
                "{name} record with {} payload bytes (want {want})",
                payload.len()
            )))
        }
    };
    let record = match body[0] {
        tag::METADATA => Record::Metadata(payload),
        tag::ENTRY => {
            if payload.len() < 16 {
                return Err(corrupt(format!(
                    "entry record with {} payload bytes (want >= 16)",
                    payload.len()
                )));
            }
            Record::Entry {
                index: le64(payload, 0),
                term: le64(payload, 8),
                data: &payload[16..],
            }
        }
        tag::HARD_STATE => {
            shape(24, "hard state")?;
            Record::HardState {
                term: le64(payload, 0),
                vote: le64(payload, 8),
                commit: le64(payload, 16),
            }
        }
        tag::SNAPSHOT => {
            shape(16, "snapshot")?;
            Record::Snapshot {
                index: le64(payload, 0),
                term: le64(payload, 8),
            }
        }
        tag::CRC => {
            shape(4, "crc")?;
            let c = le32(payload, 0);
            if c != prev {
                return Err(corrupt(format!(
                    "crc record carries {c:#010x} but chains from {prev:#010x}"
                )));
            }
            Record::Crc(c)
        }
        t => return Err(corrupt(format!("unknown record type {t}"))),
    };
    Ok(Decoded::Record { record, next, crc })
}

/// Offset of the first record at or after `from` (record-aligned) that is valid on its own
/// (header and body checksums, shape), ignoring the chain. Recovery uses it to decide whether
/// a damaged record is the tail of the log or has acknowledged data after it.
pub fn find_valid_after(data: &[u8], from: usize) -> Option<usize> {
    let mut p = align_record(from);
    while p.saturating_add(HEADER_LEN) <= data.len() {
        let h = &data[p..p + HEADER_LEN];
        if !all_zero(h)
            && crc32c::crc32c(&h[..12]) == le32(h, 12)
            && matches!(decode(data, p, None), Ok(Decoded::Record { .. }))
        {
            return Some(p);
        }
        p += RECORD_ALIGN;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Record<'static>> {
        vec![
            Record::Crc(0),
            Record::Metadata(b""),
            Record::Metadata(b"member=1;cluster=2"),
            Record::Entry {
                index: 1,
                term: 1,
                data: b"",
            },
            Record::Entry {
                index: u64::MAX,
                term: 7,
                data: &[0xAB; 1000],
            },
            Record::HardState {
                term: 3,
                vote: 2,
                commit: 9,
            },
            Record::Snapshot { index: 5, term: 2 },
        ]
    }

    #[test]
    fn round_trip_each_type_and_chain() {
        let mut buf = Vec::new();
        let mut prev = 0u32;
        let mut crcs = Vec::new();
        for r in samples() {
            let r = match r {
                Record::Crc(_) => Record::Crc(prev),
                r => r,
            };
            let before = buf.len();
            prev = encode(&mut buf, prev, &r).expect("encode");
            assert_eq!(buf.len() - before, framed_size(&r));
            assert_eq!(buf.len() % RECORD_ALIGN, 0);
            crcs.push(prev);
        }
        let mut off = 0;
        let mut chain = 0u32;
        for (i, want) in samples().into_iter().enumerate() {
            match decode(&buf, off, Some(chain)).expect("decode") {
                Decoded::Record { record, next, crc } => {
                    match (want, record) {
                        (Record::Crc(_), Record::Crc(c)) => assert_eq!(c, chain),
                        (w, r) => assert_eq!(w, r),
                    }
                    assert_eq!(crc, crcs[i]);
                    chain = crc;
                    off = next;
                }
                Decoded::End => panic!("early end"),
            }
        }
        assert_eq!(decode(&buf, off, Some(chain)), Ok(Decoded::End));
        // zero padding after the data also reads as end
        buf.extend_from_slice(&[0u8; 100]);
        assert_eq!(decode(&buf, off, Some(chain)), Ok(Decoded::End));
    }

    #[test]
    fn chain_mismatch_is_corrupt() {
        let mut buf = Vec::new();
        encode(&mut buf, 42, &Record::Snapshot { index: 1, term: 1 }).expect("encode");
        assert!(matches!(
            decode(&buf, 0, Some(42)),
            Ok(Decoded::Record { .. })
        ));
        assert!(matches!(
            decode(&buf, 0, Some(43)),
            Err(DecodeError::Corrupt { .. })
        ));
        assert!(matches!(decode(&buf, 0, None), Ok(Decoded::Record { .. })));
    }

    #[test]
    fn truncation_at_every_byte_is_torn_or_end() {
        let mut buf = Vec::new();
        encode(
            &mut buf,
            0,
            &Record::Entry {
                index: 3,
                term: 1,
                data: b"hello world",
            },
        )
        .expect("encode");
        for cut in 0..buf.len() {
            let body_end = HEADER_LEN + 1 + 16 + 11;
            let r = decode(&buf[..cut], 0, Some(0));
            if cut == 0 {
                assert_eq!(r, Ok(Decoded::End));
            } else if cut < body_end {
                assert!(
                    matches!(r, Err(DecodeError::Torn { .. })),
                    "cut {cut}: {r:?}"
                );
            } else {
                // only padding missing: still a complete record
                assert!(matches!(r, Ok(Decoded::Record { .. })), "cut {cut}: {r:?}");
            }
        }
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let mut buf = Vec::new();
        encode(
            &mut buf,
            7,
            &Record::Entry {
                index: 3,
                term: 1,
                data: b"hello world",
            },
        )
        .expect("encode");
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[byte] ^= 1 << bit;
                let r = decode(&b, 0, Some(7));
                assert!(
                    matches!(r, Err(DecodeError::Corrupt { .. })),
                    "flip {byte}:{bit} gave {r:?}"
                );
            }
        }
    }

    #[test]
    fn zero_sector_inside_record_is_torn() {
        // A record spanning three sectors whose middle sector never reached the disk.
        let mut buf = Vec::new();
        encode(
            &mut buf,
            0,
            &Record::Entry {
                index: 1,
                term: 1,
                data: &[1u8; 1500],
            },
        )
        .expect("encode");
        buf[SECTOR..2 * SECTOR].fill(0);
        assert!(matches!(
            decode(&buf, 0, Some(0)),
            Err(DecodeError::Torn { .. })
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = (seed % 200) as usize;
            let data: Vec<u8> = (0..n)
                .map(|i| (seed.rotate_left(i as u32 % 64) & 0xff) as u8)
                .collect();
            for off in [0usize, 1, 16, 300] {
                let _ = decode(&data, off, None);
                let _ = decode(&data, off, Some(seed as u32));
            }
            let _ = find_valid_after(&data, 0);
        }
        // A header claiming a huge length must not allocate or index out of range.
        let mut h = vec![0u8; 16];
        h[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let hc = crc32c::crc32c(&h[..12]);
        h[12..].copy_from_slice(&hc.to_le_bytes());
        assert!(matches!(
            decode(&h, 0, None),
            Err(DecodeError::Corrupt { .. })
        ));
    }

    #[test]
    fn oversized_body_is_an_error_not_a_panic() {
        // calloc'd and never touched: encode refuses before copying.
        let big = vec![0u8; MAX_BODY_LEN - 16];
        let mut out = vec![0u8; 16];
        let r = encode(
            &mut out,
            0,
            &Record::Entry {
                index: 1,
                term: 1,
                data: &big,
            },
        );
        assert_eq!(
            r,
            Err(EncodeError {
                body_len: MAX_BODY_LEN + 1
            })
        );
        assert_eq!(out, vec![0u8; 16]);
        assert_eq!(frame_len(usize::MAX), usize::MAX & !(RECORD_ALIGN - 1));
    }

    #[test]
    fn find_valid_after_skips_garbage() {
        let mut buf = vec![0xFFu8; 64];
        let at = buf.len();
        encode(
            &mut buf,
            99,
            &Record::HardState {
                term: 1,
                vote: 1,
                commit: 1,
            },
        )
        .expect("encode");
        assert_eq!(find_valid_after(&buf, 0), Some(at));
        assert_eq!(find_valid_after(&buf, at + 1), None);
    }
}
