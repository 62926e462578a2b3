//! The payload of a raft entry: which shard proposed it, its waiter id there, and the command.
//!
//! Format (version 1), little endian:
//! `[u8 version = 1][u16 origin shard][u64 waiter id][store::Command encoding …]`.
//! Entries proposed by the raft leader itself (e.g. `Sync`) use origin [`NO_ORIGIN`].

use crate::store::Command;

pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 1 + 2 + 8;
/// The origin of entries no client waits for.
pub const NO_ORIGIN: u16 = u16::MAX;

pub struct Proposal<'a> {
    pub origin: u16,
    pub id: u64,
    pub command: &'a Command,
}

impl Proposal<'_> {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.extend_from_slice(&self.origin.to_le_bytes());
        out.extend_from_slice(&self.id.to_le_bytes());
        self.command.encode(out);
    }
}

/// Reads the origin and waiter id without decoding the command.
pub fn header(data: &[u8]) -> Result<(u16, u64), String> {
    if data.len() < HEADER_LEN {
        return Err(format!(
            "entry of {} bytes is shorter than its header",
            data.len()
        ));
    }
    if data[0] != VERSION {
        return Err(format!("unknown entry version {}", data[0]));
    }
    let origin = u16::from_le_bytes([data[1], data[2]]);
    let mut id = [0u8; 8];
    id.copy_from_slice(&data[3..11]);
    Ok((origin, u64::from_le_bytes(id)))
}

pub fn decode(data: &[u8]) -> Result<(u16, u64, Command), String> {
    let (origin, id) = header(data)?;
    let cmd = Command::decode(&data[HEADER_LEN..]).map_err(|e| format!("{e:?}"))?;
    Ok((origin, id, cmd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_short_or_unknown_input() {
        let cmd = Command::Sync { now: 42 };
        let mut out = Vec::new();
        Proposal {
            origin: 3,
            id: 99,
            command: &cmd,
        }
        .encode(&mut out);
        let (origin, id, back) = decode(&out).unwrap();
        assert_eq!((origin, id), (3, 99));
        assert!(matches!(back, Command::Sync { now: 42 }));
        for cut in 0..HEADER_LEN {
            assert!(header(&out[..cut]).is_err());
        }
        out[0] = 9;
        assert!(header(&out).is_err());
    }
}
