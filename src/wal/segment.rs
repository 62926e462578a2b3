//! WAL segments: file naming (`%016x-%016x.wal`, sequence then first index, like etcd) and
//! the scan of one segment's bytes during recovery, which decides where the valid log ends
//! and whether damage is a torn tail (truncate, warn) or corruption before the tail (refuse).
//!
//! Knows records (via `record`) but not files or raft: it works on a byte slice holding a
//! whole segment and reports records to a callback.

use super::record::{self, DecodeError, Decoded, Record};

/// Parsed segment file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SegmentName {
    /// Sequence number: consecutive, starting at 0.
    pub seq: u64,
    /// Index of the first entry expected in the segment (last entry index + 1 when it was cut).
    pub first_index: u64,
}

impl SegmentName {
    pub fn file_name(&self) -> String {
        format!("{:016x}-{:016x}.wal", self.seq, self.first_index)
    }

    /// Parses `%016x-%016x.wal`; anything else (temp files, other names) is `None`.
    pub fn parse(name: &str) -> Option<SegmentName> {
        let stem = name.strip_suffix(".wal")?;
        let (a, b) = stem.split_once('-')?;
        if a.len() != 16 || b.len() != 16 {
            return None;
        }
        Some(SegmentName {
            seq: u64::from_str_radix(a, 16).ok()?,
            first_index: u64::from_str_radix(b, 16).ok()?,
        })
    }
}

/// How the scan of one segment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanEnd {
    /// Offset just past the last valid record (where the next record goes).
    pub end: usize,
    /// Chain value after the last valid record.
    pub crc: u32,
    /// Number of valid records.
    pub records: usize,
    /// Damage at the tail: (offset, description). Only ever set for the last segment.
    pub tail_damage: Option<(usize, String)>,
    /// Whether any byte after `end` is non-zero (damage, torn leftovers): the tail needs
    /// rewriting before the file is appended to.
    pub dirty_after_end: bool,
}

/// Damage before the tail: recovery must stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    pub offset: usize,
    pub reason: String,
}

/// Walks the records of one segment (`data` = the whole file from offset 0), calling `on`
/// for each valid record in order. `chain` is the crc the first record must continue (None:
/// accept any, for the first segment read). The first record must be a `Crc` record.
///
/// Damage in a segment that is not the last is always an error (every byte of it was
/// fdatasync'ed before the next segment was created). In the last segment:
/// - torn records (incomplete, or with an all-zero sector) are the tail: truncated;
/// - other damage is the tail only if no record that is valid on its own follows it in the
///   segment; otherwise acknowledged data lies beyond it and the scan fails.
pub fn scan<F>(
    data: &[u8],
    chain: Option<u32>,
    is_last: bool,
    mut on: F,
) -> Result<ScanEnd, ScanError>
where
    F: FnMut(&Record<'_>) -> Result<(), String>,
{
    let mut off = 0usize;
    let mut crc = chain;
    let mut records = 0usize;
    let damage = loop {
        match record::decode(data, off, crc) {
            Ok(Decoded::End) => break None,
            Ok(Decoded::Record {
                record,
                next,
                crc: c,
            }) => {
                if records == 0 && !matches!(record, Record::Crc(_)) {
                    return Err(ScanError {
                        offset: off,
                        reason: "segment does not start with a crc record".into(),
                    });
                }
                on(&record).map_err(|reason| ScanError {
                    offset: off,
                    reason,
                })?;
                records += 1;
                crc = Some(c);
                off = next;
            }
            Err(e) => break Some(e),
        }
    };
    let crc = crc.unwrap_or(0);
    let end = off;
    let dirty_after_end = data.get(end..).is_some_and(|r| r.iter().any(|&b| b != 0));
    let tail_damage = match damage {
        None => None,
        Some(e) => {
            if !is_last {
                return Err(ScanError {
                    offset: off,
                    reason: format!("{e} in a segment that is not the last"),
                });
            }
            match &e {
                DecodeError::Torn { reason } => Some((off, format!("torn record: {reason}"))),
                DecodeError::Corrupt { reason, resume_at } => {
                    let from = resume_at.unwrap_or(off + record::RECORD_ALIGN);
                    if let Some(p) = record::find_valid_after(data, from) {
                        return Err(ScanError {
                            offset: off,
                            reason: format!(
                                "{reason}; valid records follow at offset {p}, so this is not \
                                 a torn tail"
                            ),
                        });
                    }
                    Some((off, format!("corrupt record at the tail: {reason}")))
                }
            }
        }
    };
    Ok(ScanEnd {
        end,
        crc,
        records,
        tail_damage,
        dirty_after_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::record::encode;

    #[test]
    fn names_round_trip() {
        let n = SegmentName {
            seq: 0x1f,
            first_index: u64::MAX,
        };
        assert_eq!(n.file_name(), "000000000000001f-ffffffffffffffff.wal");
        assert_eq!(SegmentName::parse(&n.file_name()), Some(n));
        for bad in [
            "x.wal",
            "0000000000000001-0000000000000002.wal.tmp",
            "000000000000001-0000000000000002.wal",
            "000000000000000g-0000000000000002.wal",
            "0000000000000001_0000000000000002.wal",
            "",
        ] {
            assert_eq!(SegmentName::parse(bad), None, "{bad}");
        }
    }

    fn segment(n: usize) -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        let mut starts = vec![0];
        let mut crc = encode(&mut buf, 0, &Record::Crc(0)).expect("enc");
        for i in 0..n {
            starts.push(buf.len());
            crc = encode(
                &mut buf,
                crc,
                &Record::Entry {
                    index: i as u64 + 1,
                    term: 1,
                    data: &[i as u8; 40],
                },
            )
            .expect("enc");
        }
        buf.resize(buf.len() + 4096, 0);
        (buf, starts)
    }

    #[test]
    fn clean_segment() {
        let (buf, starts) = segment(5);
        let mut seen = 0;
        let end = scan(&buf, Some(0), true, |_| {
            seen += 1;
            Ok(())
        })
        .expect("scan");
        assert_eq!(seen, 6);
        assert_eq!(end.records, 6);
        assert!(end.end > starts[5]);
        assert!(!end.dirty_after_end);
        assert_eq!(end.tail_damage, None);
    }

    #[test]
    fn flipped_bit_in_last_record_is_tail_in_middle_is_error() {
        let (buf, starts) = segment(5);
        let mut b = buf.clone();
        b[starts[5] + 20] ^= 4;
        let end = scan(&b, Some(0), true, |_| Ok(())).expect("tail");
        assert_eq!(end.end, starts[5]);
        assert!(end.tail_damage.is_some());
        assert!(end.dirty_after_end);

        let mut b = buf.clone();
        b[starts[3] + 20] ^= 4;
        let err = scan(&b, Some(0), true, |_| Ok(())).expect_err("middle");
        assert_eq!(err.offset, starts[3]);

        // a flipped length bit in the middle: header checksum catches it; later records found
        let mut b = buf.clone();
        b[starts[2] + 1] ^= 0x40;
        let err = scan(&b, Some(0), true, |_| Ok(())).expect_err("middle header");
        assert_eq!(err.offset, starts[2]);

        // any damage in a non-last segment is an error
        let mut b = buf;
        b[starts[5] + 20] ^= 4;
        assert!(scan(&b, Some(0), false, |_| Ok(())).is_err());
    }

    #[test]
    fn wrong_chain_or_first_record_is_error() {
        let (buf, _) = segment(2);
        assert!(scan(&buf, Some(1), false, |_| Ok(())).is_err());
        let mut b = Vec::new();
        encode(&mut b, 0, &Record::Snapshot { index: 1, term: 1 }).expect("enc");
        assert!(scan(&b, None, true, |_| Ok(())).is_err());
    }
}
