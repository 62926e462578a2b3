//! WAL record framing (`tern::wal::record`) and the segment scan recovery runs on it
//! (`tern::wal::segment::scan`), plus the decoders recovery applies to record payloads
//! (`Bootstrap` metadata, raft `Entry` protobufs and the proposals they carry).
//!
//! The first input byte picks how the rest is used:
//! - 0: as segment bytes, unchanged;
//! - 1: as segment bytes after repairing the checksums of the frames it describes (so the
//!   fuzzer gets past the CRCs to the tag, shape, chain and padding checks);
//! - 2: as a description of records, which are encoded by the real encoder, then damaged.
//!
//! Properties on any segment bytes: no panic; an accepted record re-encodes to exactly the
//! bytes it was read from (header, body and padding: the format has one encoding); `next`,
//! `resume_at` and `find_valid_after` are aligned and move forward; the scan reports exactly
//! the records a plain decode loop finds, and a scan that accepts a segment as "not last"
//! accepts it as last too with no damage. Accepted metadata payloads that decode as
//! `Bootstrap` re-encode to the same bytes.
//! Properties on encoded records: they decode back equal, chained; a single flipped bit makes
//! the record that holds it fail to decode (never another valid record), and a scan of the
//! damaged log reports only the records before it; a cut log decodes every record before the
//! cut and reports the cut one as torn (or end of log), never as corrupt.
#![no_main]

use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use protobuf::Message as _;
use tern::raft::storage::Bootstrap;
use tern::wal::record::{
    decode, encode, find_valid_after, framed_size, DecodeError, Decoded, Record, HEADER_LEN,
    RECORD_ALIGN,
};
use tern::wal::segment::scan;

fn le32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

/// An owned record, to build from fuzz input.
#[derive(Debug, Clone)]
enum Owned {
    Metadata(Vec<u8>),
    Entry {
        index: u64,
        term: u64,
        data: Vec<u8>,
    },
    HardState {
        term: u64,
        vote: u64,
        commit: u64,
    },
    Snapshot {
        index: u64,
        term: u64,
    },
    /// Carries the chain value, whatever it is when encoded.
    Crc,
}

impl Owned {
    fn record(&self, prev: u32) -> Record<'_> {
        match self {
            Owned::Metadata(m) => Record::Metadata(m),
            Owned::Entry { index, term, data } => Record::Entry {
                index: *index,
                term: *term,
                data,
            },
            Owned::HardState { term, vote, commit } => Record::HardState {
                term: *term,
                vote: *vote,
                commit: *commit,
            },
            Owned::Snapshot { index, term } => Record::Snapshot {
                index: *index,
                term: *term,
            },
            Owned::Crc => Record::Crc(prev),
        }
    }
}

/// What recovery does with record payloads: must never panic.
fn payload_decoders(rec: &Record<'_>) {
    match rec {
        Record::Metadata(m) => {
            if let Ok(b) = Bootstrap::decode(m) {
                assert_eq!(
                    &b.encode()[..],
                    *m,
                    "bootstrap metadata re-encodes differently"
                );
            }
        }
        Record::Entry { data, .. } => {
            if let Ok(entry) = raft::eraftpb::Entry::parse_from_bytes(data) {
                let _ = tern::shard::proposal::decode(&entry.data);
            }
        }
        _ => {}
    }
}

/// Checks one decode at `off`; returns the accepted record's next offset and crc.
fn check_at(data: &[u8], off: usize, expected: Option<u32>) -> Option<(usize, u32)> {
    match decode(data, off, expected) {
        Ok(Decoded::End) => None,
        Ok(Decoded::Record { record, next, crc }) => {
            assert!(next > off);
            assert_eq!(next - off, framed_size(&record));
            assert_eq!((next - off) % RECORD_ALIGN, 0);
            let prev = le32(data, off + 4);
            if let Some(e) = expected {
                assert_eq!(e, prev);
            }
            let mut again = Vec::new();
            assert_eq!(encode(&mut again, prev, &record), Ok(crc));
            assert_eq!(again.len(), next - off);
            let have = &data[off..next.min(data.len())];
            assert_eq!(
                have,
                &again[..have.len()],
                "accepted bytes are not the encoding"
            );
            assert!(again[have.len()..].iter().all(|&b| b == 0));
            assert!(matches!(
                decode(data, off, Some(prev ^ 1)),
                Err(DecodeError::Corrupt { .. })
            ));
            payload_decoders(&record);
            Some((next, crc))
        }
        Err(DecodeError::Corrupt {
            resume_at: Some(r), ..
        }) => {
            assert!(r > off && (r - off).is_multiple_of(RECORD_ALIGN));
            None
        }
        Err(_) => None,
    }
}

fn check_segment(data: &[u8]) {
    let h = tern_fuzz::fnv(data) as usize;
    let aligned = (h % (data.len() / RECORD_ALIGN + 1)) * RECORD_ALIGN;
    for off in [0, 1, aligned, data.len()] {
        check_at(data, off, None);
        check_at(data, off, Some(h as u32));
        if let Some(p) = find_valid_after(data, off) {
            assert!(p >= off && p.is_multiple_of(RECORD_ALIGN));
            assert!(matches!(decode(data, p, None), Ok(Decoded::Record { .. })));
        }
    }
    // A plain decode loop from the start, as the scan does.
    let mut walked = Vec::new();
    let mut off = 0;
    let mut chain = None;
    while let Some((next, crc)) = check_at(data, off, chain) {
        walked.push(off);
        off = next;
        chain = Some(crc);
    }
    let mut as_last = Vec::new();
    let last = scan(data, None, true, |r| {
        as_last.push(format!("{r:?}"));
        Ok(())
    });
    let mut as_middle = Vec::new();
    let middle = scan(data, None, false, |r| {
        as_middle.push(format!("{r:?}"));
        Ok(())
    });
    if let Ok(end) = &last {
        assert_eq!(end.records, as_last.len());
        assert_eq!(
            (end.records, end.end),
            (walked.len(), off),
            "scan vs decode loop"
        );
    }
    if let Ok(end) = &middle {
        assert_eq!(end.tail_damage, None);
        assert_eq!(
            last.as_ref().ok(),
            Some(end),
            "middle accepted, last not the same"
        );
        assert_eq!(as_middle, as_last);
    }
}

/// Rewrites the header and body checksums of the frames in `data`, chained from 0, so that
/// only what lies behind the checksums decides.
fn repair(data: &mut [u8]) {
    let mut off = 0;
    let mut prev = 0u32;
    while off + HEADER_LEN <= data.len() {
        let len = (le32(data, off) as usize).min(data.len() - off - HEADER_LEN);
        if len == 0 {
            break;
        }
        data[off..off + 4].copy_from_slice(&(len as u32).to_le_bytes());
        data[off + 4..off + 8].copy_from_slice(&prev.to_le_bytes());
        let body = off + HEADER_LEN..off + HEADER_LEN + len;
        let crc = crc32c::crc32c_append(prev, &data[body]);
        data[off + 8..off + 12].copy_from_slice(&crc.to_le_bytes());
        let hcrc = crc32c::crc32c(&data[off..off + 12]);
        data[off + 12..off + 16].copy_from_slice(&hcrc.to_le_bytes());
        prev = crc;
        off += (HEADER_LEN + len).div_ceil(RECORD_ALIGN) * RECORD_ALIGN;
    }
}

fn arbitrary_record(u: &mut Unstructured<'_>) -> ArbResult<Owned> {
    Ok(match u.int_in_range(0..=4u8)? {
        0 => {
            let len = u.arbitrary_len::<u8>()?.min(700);
            Owned::Metadata(u.bytes(len)?.to_vec())
        }
        1 => {
            let (index, term) = (u.arbitrary()?, u.arbitrary()?);
            let len = u.arbitrary_len::<u8>()?.min(1200);
            Owned::Entry {
                index,
                term,
                data: u.bytes(len)?.to_vec(),
            }
        }
        2 => Owned::HardState {
            term: u.arbitrary()?,
            vote: u.arbitrary()?,
            commit: u.arbitrary()?,
        },
        3 => Owned::Snapshot {
            index: u.arbitrary()?,
            term: u.arbitrary()?,
        },
        _ => Owned::Crc,
    })
}

fn check_encoded(u: &mut Unstructured<'_>) -> ArbResult<()> {
    let first_prev: u32 = u.arbitrary()?;
    let mut records = Vec::new();
    while records.len() < 12 && !u.is_empty() {
        records.push(arbitrary_record(u)?);
    }
    let mut log = Vec::new();
    let mut starts = Vec::new();
    let mut prevs = Vec::new();
    let mut prev = first_prev;
    for r in &records {
        starts.push(log.len());
        prevs.push(prev);
        prev = encode(&mut log, prev, &r.record(prev)).expect("small records encode");
    }
    starts.push(log.len());
    // Everything decodes back, in order, chained.
    let mut off = 0;
    let mut chain = first_prev;
    for (i, r) in records.iter().enumerate() {
        match decode(&log, off, Some(chain)) {
            Ok(Decoded::Record { record, next, crc }) => {
                assert_eq!(record, r.record(chain));
                assert_eq!(next, starts[i + 1]);
                chain = crc;
                off = next;
            }
            other => panic!("record {i} decodes as {other:?}"),
        }
    }
    assert_eq!(decode(&log, off, Some(chain)), Ok(Decoded::End));
    check_segment(&log);
    let crc_first = matches!(records.first(), Some(Owned::Crc));
    if crc_first {
        let end = scan(&log, Some(first_prev), false, |_| Ok(())).expect("clean segment");
        assert_eq!(
            (end.records, end.end, end.crc),
            (records.len(), log.len(), chain)
        );
    }
    if log.is_empty() {
        return Ok(());
    }
    // One flipped bit.
    let at = u.choose_index(log.len())?;
    let bit: u8 = u.int_in_range(0..=7)?;
    let mut bad = log.clone();
    bad[at] ^= 1 << bit;
    let hit = starts.iter().rposition(|&s| s <= at).expect("starts at 0");
    match decode(&bad, starts[hit], Some(prevs[hit])) {
        Err(_) => {}
        other => panic!("bit {bit} of byte {at} flipped in record {hit}: {other:?}"),
    }
    check_segment(&bad);
    if crc_first {
        let mut seen = 0;
        if let Ok(end) = scan(&bad, Some(first_prev), true, |_| {
            seen += 1;
            Ok(())
        }) {
            assert!(
                end.records <= hit,
                "scan of a damaged log reports record {hit}"
            );
        }
        assert!(seen <= hit);
    }
    // A cut.
    let cut = u.choose_index(log.len())?;
    let short = &log[..cut];
    let torn = starts.iter().rposition(|&s| s <= cut).expect("starts at 0");
    for (i, &s) in starts[..torn].iter().enumerate() {
        let r = decode(short, s, Some(prevs[i]));
        assert!(matches!(r, Ok(Decoded::Record { .. })), "record {i}: {r:?}");
    }
    if torn < records.len() {
        let r = decode(short, starts[torn], Some(prevs[torn]));
        if starts[torn] + HEADER_LEN + 1 + r_len(&records[torn]) <= cut {
            // Only padding is missing: still the whole record.
            assert!(
                matches!(r, Ok(Decoded::Record { .. })),
                "cut at {cut}: {r:?}"
            );
        } else {
            assert!(
                matches!(r, Ok(Decoded::End) | Err(DecodeError::Torn { .. })),
                "cut at {cut} in record {torn}: {r:?}"
            );
        }
    }
    check_segment(short);
    Ok(())
}

fn r_len(r: &Owned) -> usize {
    match r {
        Owned::Metadata(m) => m.len(),
        Owned::Entry { data, .. } => 16 + data.len(),
        Owned::HardState { .. } => 24,
        Owned::Snapshot { .. } => 16,
        Owned::Crc => 4,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => check_segment(rest),
        1 => {
            let mut fixed = rest.to_vec();
            repair(&mut fixed);
            check_segment(&fixed);
        }
        _ => {
            let _ = check_encoded(&mut Unstructured::new(rest));
        }
    }
});
