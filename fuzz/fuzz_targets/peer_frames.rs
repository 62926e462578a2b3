//! Raft message batches as members send them to each other (`POST /raft/msgs`, decoded by
//! `tern::transport::decode_frames`), and the payloads inside the messages that a member
//! decodes later: entry data (`tern::shard::proposal::decode`: store commands and member
//! changes), conf-change entries and snapshot data (`decode_snapshot_payload`).
//!
//! The input is tried as a batch body, and framed as the body of a single message (so the
//! fuzzer can mutate the protobuf directly without keeping length prefixes right).
//!
//! Properties: no panic; an accepted batch re-encodes (`encode_frame`) to a batch that decodes
//! to the same messages (the same known fields; exactly the same from the first re-encoding
//! on, as protobuf 2 keeps unknown fields in a map); an accepted proposal re-encodes to one that decodes to the same
//! origin and the same command or member change.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType, Message};
use tern::shard::proposal::{self, Payload};
use tern::transport::{decode_frames, encode_frame};

fn check_proposal(data: &[u8]) {
    let Ok((origin, payload)) = proposal::decode(data) else {
        return;
    };
    assert_eq!(proposal::origin(data), Ok(origin));
    let mut again = Vec::new();
    match &payload {
        Payload::Store(c) => proposal::encode_store(origin, c, &mut again),
        Payload::Member(m) => proposal::encode_member(origin, m, &mut again),
    }
    let (origin2, payload2) = proposal::decode(&again).expect("a re-encoded proposal decodes");
    assert_eq!(origin2, origin);
    match (payload, payload2) {
        (Payload::Store(a), Payload::Store(b)) => assert_eq!(a, b),
        (Payload::Member(a), Payload::Member(b)) => assert_eq!(a, b),
        _ => panic!("proposal kind changed"),
    }
    assert_eq!(
        proposal::is_member_change(&again),
        proposal::is_member_change(data)
    );
}

fn check_entries(entries: &[Entry]) {
    for e in entries {
        match e.get_entry_type() {
            EntryType::EntryNormal => check_proposal(e.get_data()),
            EntryType::EntryConfChange => {
                if let Ok(cc) = ConfChange::parse_from_bytes(e.get_data()) {
                    check_proposal(cc.get_context());
                }
            }
            EntryType::EntryConfChangeV2 => {
                if let Ok(cc) = ConfChangeV2::parse_from_bytes(e.get_data()) {
                    check_proposal(cc.get_context());
                }
            }
        }
    }
}

fn check_batch(body: &[u8]) {
    let Ok(msgs) = decode_frames(body) else {
        return;
    };
    let mut again = Vec::new();
    for m in &msgs {
        encode_frame(m, &mut again);
    }
    let back: Vec<Message> = decode_frames(&again).expect("a re-encoded batch decodes");
    // protobuf 2's `==` tells an emptied unknown-field map from an absent one (a message field
    // sent twice is cleared, then read again), so compare the known fields (the text format
    // shows them all) and require the round trip to be exact from the re-encoded batch on.
    assert_eq!(format!("{back:?}"), format!("{msgs:?}"), "batch round trip");
    let mut third = Vec::new();
    for m in &back {
        encode_frame(m, &mut third);
    }
    assert_eq!(
        decode_frames(&third).as_ref(),
        Ok(&back),
        "second round trip"
    );
    for m in &msgs {
        check_entries(m.get_entries());
        if m.has_snapshot() {
            let _ = tern::raft::storage::decode_snapshot_payload(m.get_snapshot().get_data());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check_batch(data);
    if let Ok(len) = u32::try_from(data.len()) {
        let mut framed = len.to_le_bytes().to_vec();
        framed.extend_from_slice(data);
        check_batch(&framed);
    }
});
