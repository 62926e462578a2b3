//! The payload of a raft entry: who proposed it (member, shard, waiter id there) and what it
//! does — a store command or a change to the member list.
//!
//! Format, little endian:
//! `[u8 kind][u64 member][u16 origin shard][u64 waiter id][payload …]` where kind 2 carries a
//! `store::Command` encoding and kind 3 a `cluster::MemberChange` encoding. Kind 1 (written before
//! clusters existed) is `[1][u16 origin][u64 id][store::Command]` with no member. The same bytes
//! are the context of raft conf-change entries. Entries proposed by the raft leader itself
//! (e.g. `Sync`) and bootstrap changes use origin [`NO_ORIGIN`].

use crate::cluster::membership::MemberChange;
use crate::codec::{self, Reader};
use crate::store::Command;

const KIND_LEGACY_STORE: u8 = 1;
const KIND_STORE: u8 = 2;
const KIND_MEMBER: u8 = 3;
const HEADER_LEN: usize = 1 + 8 + 2 + 8;
/// The origin of entries no client waits for.
pub const NO_ORIGIN: u16 = u16::MAX;

/// Who waits for an entry: a waiter `id` on shard `origin` of member `member`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub member: u64,
    pub shard: u16,
    pub id: u64,
}

impl Origin {
    /// Nobody waits (leader clock syncs, bootstrap changes).
    pub const NONE: Origin = Origin {
        member: 0,
        shard: NO_ORIGIN,
        id: 0,
    };

    fn encode(&self, kind: u8, out: &mut Vec<u8>) {
        codec::put_u8(out, kind);
        codec::put_u64(out, self.member);
        out.extend_from_slice(&self.shard.to_le_bytes());
        codec::put_u64(out, self.id);
    }

    /// Whether the waiter lives on shard `shard` of member `member`.
    pub fn is(&self, member: u64, shard: usize) -> bool {
        self.shard != NO_ORIGIN && self.member == member && usize::from(self.shard) == shard
    }
}

pub enum Payload {
    Store(Command),
    Member(MemberChange),
}

pub fn encode_store(origin: Origin, command: &Command, out: &mut Vec<u8>) {
    origin.encode(KIND_STORE, out);
    command.encode(out);
}

pub fn encode_member(origin: Origin, change: &MemberChange, out: &mut Vec<u8>) {
    origin.encode(KIND_MEMBER, out);
    change.encode(out);
}

/// Reads who proposed the entry without decoding the payload.
pub fn origin(data: &[u8]) -> Result<Origin, String> {
    match data.first() {
        Some(&KIND_LEGACY_STORE) if data.len() >= 11 => Ok(Origin {
            member: 0,
            shard: u16::from_le_bytes([data[1], data[2]]),
            id: u64::from_le_bytes(data[3..11].try_into().unwrap_or_default()),
        }),
        Some(&KIND_STORE | &KIND_MEMBER) if data.len() >= HEADER_LEN => Ok(Origin {
            member: u64::from_le_bytes(data[1..9].try_into().unwrap_or_default()),
            shard: u16::from_le_bytes([data[9], data[10]]),
            id: u64::from_le_bytes(data[11..19].try_into().unwrap_or_default()),
        }),
        Some(&(KIND_LEGACY_STORE | KIND_STORE | KIND_MEMBER)) | None => Err(format!(
            "entry of {} bytes is shorter than its header",
            data.len()
        )),
        Some(kind) => Err(format!("unknown entry kind {kind}")),
    }
}

/// Whether the entry carries a member change (applied by the raft node, not the store).
pub fn is_member_change(data: &[u8]) -> bool {
    data.first() == Some(&KIND_MEMBER)
}

pub fn decode(data: &[u8]) -> Result<(Origin, Payload), String> {
    let origin = origin(data)?;
    let body = if data[0] == KIND_LEGACY_STORE {
        &data[11..]
    } else {
        &data[HEADER_LEN..]
    };
    let payload = if data[0] == KIND_MEMBER {
        let mut r = Reader::new(body);
        let change = MemberChange::decode(&mut r).map_err(|e| e.to_string())?;
        r.finish().map_err(|e| e.to_string())?;
        Payload::Member(change)
    } else {
        Payload::Store(Command::decode(body).map_err(|e| format!("{e:?}"))?)
    };
    Ok((origin, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_short_or_unknown_input() {
        let cmd = Command::Sync { now: 42 };
        let who = Origin {
            member: 7,
            shard: 3,
            id: 99,
        };
        let mut out = Vec::new();
        encode_store(who, &cmd, &mut out);
        let (back_who, back) = decode(&out).unwrap();
        assert_eq!(back_who, who);
        assert!(back_who.is(7, 3) && !back_who.is(8, 3) && !back_who.is(7, 2));
        assert!(matches!(back, Payload::Store(Command::Sync { now: 42 })));
        assert!(!is_member_change(&out));
        for cut in 0..HEADER_LEN {
            assert!(origin(&out[..cut]).is_err());
        }
        out[0] = 9;
        assert!(origin(&out).is_err());

        let mut out = Vec::new();
        encode_member(Origin::NONE, &MemberChange::Remove(5), &mut out);
        assert!(is_member_change(&out));
        let (who, payload) = decode(&out).unwrap();
        assert!(!who.is(0, usize::from(NO_ORIGIN)));
        assert!(matches!(payload, Payload::Member(MemberChange::Remove(5))));
    }

    #[test]
    fn reads_entries_written_before_members_existed() {
        let mut out = vec![KIND_LEGACY_STORE];
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&12u64.to_le_bytes());
        Command::Sync { now: 1 }.encode(&mut out);
        let (who, payload) = decode(&out).unwrap();
        assert_eq!((who.member, who.shard, who.id), (0, 4, 12));
        assert!(matches!(payload, Payload::Store(Command::Sync { now: 1 })));
    }
}
