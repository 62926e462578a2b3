//! Snapshot decoding, layer by layer as recovery and snapshot catch-up read it: the snapshot
//! file (`tern::snap::decode`), its payload (`tern::raft::storage::decode_snapshot_payload`:
//! voters and member list) and the store bytes inside it (`Store::restore`).
//!
//! The input is a snapshot file. Each layer is tried on the bytes as they are and again with
//! the layer's length and checksum fields repaired, so the fuzzer reaches the inner decoders
//! through the checksums; the raw input is also tried directly as a payload and as store bytes.
//!
//! Properties: no panic; an accepted file re-encodes to exactly its bytes; with its checksum
//! and length repaired only the magic and the version can refuse a file; an accepted payload
//! re-encodes to a payload that decodes to the same voters, members and store bytes; an
//! accepted store snapshot gives a store whose own snapshot restores, to a store whose
//! snapshot is the same bytes and whose recursive listing of `/` is the same; expiring every
//! key of a restored store (the leader's `Sync`) does not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern::codec;
use tern::raft::storage::{decode_snapshot_payload, encode_snapshot_payload};
use tern::snap;
use tern::store::{Command, DecodeError, Event, Published, Store};

/// A store restored from snapshot bytes, published with a history of `history` events.
fn restore(bytes: &[u8], history: usize) -> Result<Store, DecodeError> {
    Store::restore(bytes, Published::new(history), 1, 1)
}

/// What a snapshot of the store's published version holds.
fn snapshot(store: &Store) -> Vec<u8> {
    store.published().snapshot().encode()
}

/// The recursive listing of `/` in the store's published version.
fn listing(store: &Store) -> Result<Event, tern::error::Error> {
    store.published().view().get("/", true, true)
}

fn check_file(bytes: &[u8]) -> bool {
    match snap::decode(bytes) {
        Ok(s) => {
            assert_eq!(
                snap::encode(s.index, s.term, &s.payload),
                bytes,
                "an accepted snapshot file re-encodes differently"
            );
            check_payload(&s.payload);
            true
        }
        Err(_) => false,
    }
}

fn check_payload(payload: &[u8]) {
    let Ok(p) = decode_snapshot_payload(payload) else {
        return;
    };
    let again = encode_snapshot_payload(&p.voters, &p.members, p.store);
    let back = decode_snapshot_payload(&again).expect("a re-encoded payload decodes");
    assert_eq!(back.voters, p.voters);
    assert_eq!(back.members, p.members);
    assert_eq!(back.store, p.store);
    check_store(p.store);
}

fn check_store(bytes: &[u8]) {
    check_restored(bytes);
    if bytes.len() >= 4 {
        let mut fixed = bytes.to_vec();
        let body = fixed.len() - 4;
        let sum = codec::checksum(&fixed[..body]);
        fixed[body..].copy_from_slice(&sum.to_le_bytes());
        check_restored(&fixed);
    }
}

fn check_restored(bytes: &[u8]) {
    let Ok(mut store) = restore(bytes, 1000) else {
        return;
    };
    let own = snapshot(&store);
    let again = restore(&own, 1000).expect("a store's own snapshot restores");
    assert_eq!(snapshot(&again), own, "snapshot of a restored snapshot differs");
    assert_eq!(again.index(), store.index());
    assert_eq!(listing(&store), listing(&again));
    let _ = restore(bytes, 1).expect("a smaller history restores too");
    if store.index() < u64::MAX / 2 {
        store.apply(&Command::Sync { now: i64::MAX });
        store.publish(2, 1);
        assert!(!store.has_ttl_keys());
        let _ = listing(&store);
        let _ = restore(&snapshot(&store), 1000).expect("restores after expiry");
    }
}

fuzz_target!(|data: &[u8]| {
    let accepted = check_file(data);
    if data.len() >= snap::HEADER_LEN {
        let mut fixed = data.to_vec();
        let len = (fixed.len() - snap::HEADER_LEN) as u64;
        fixed[28..36].copy_from_slice(&len.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&fixed[..36]), &fixed[snap::HEADER_LEN..]);
        fixed[36..40].copy_from_slice(&crc.to_le_bytes());
        let good_head = &fixed[..8] == snap::MAGIC && fixed[8..12] == snap::VERSION.to_le_bytes();
        assert_eq!(check_file(&fixed), good_head, "repaired file");
        if accepted {
            assert_eq!(fixed, data);
        }
    }
    check_payload(data);
    check_store(data);
});
