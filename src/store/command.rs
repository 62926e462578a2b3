//! Every change to the key space, as the raft log carries it: [`Command`] and its versioned
//! binary encoding.
//!
//! Owns the wire format of a command. Knows nothing about HTTP (the API layer turns a request
//! into a clean command) nor about how a command is applied (that is the store's). Times are
//! absolute unix nanoseconds chosen by the proposer, so applying is deterministic.

use crate::auth::state::AuthChange;
use crate::codec::{self, DecodeError, Reader};

/// One mutation of the v2 key space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// PUT without conditions (action "set"). dir=true makes a directory (value must be empty).
    Set {
        key: String,
        value: String,
        dir: bool,
        expire_at: Option<i64>,
        refresh: bool,
    },
    /// PUT prevExist=false (action "create") and POST (unique=true: action "create",
    /// key = key + "/" + format!("{:020}", new_index)).
    Create {
        key: String,
        value: String,
        dir: bool,
        expire_at: Option<i64>,
        unique: bool,
    },
    /// PUT prevExist=true without prevValue/prevIndex (action "update"); refresh=true only resets
    /// the TTL. `value: None` writes an empty value, as etcd does for a form without `value`;
    /// `dir` is carried but, as in etcd, does not change what an update does.
    Update {
        key: String,
        value: Option<String>,
        dir: bool,
        expire_at: Option<i64>,
        refresh: bool,
    },
    /// PUT with prevValue and/or prevIndex (action "compareAndSwap"). An empty prevValue or a
    /// zero prevIndex means "not given", as in etcd.
    CompareAndSwap {
        key: String,
        value: String,
        prev_value: Option<String>,
        prev_index: Option<u64>,
        expire_at: Option<i64>,
        refresh: bool,
    },
    /// DELETE (action "delete").
    Delete {
        key: String,
        dir: bool,
        recursive: bool,
    },
    /// DELETE with prevValue and/or prevIndex (action "compareAndDelete").
    CompareAndDelete {
        key: String,
        prev_value: Option<String>,
        prev_index: Option<u64>,
    },
    /// Expire every key whose expiration <= now (each expiry is an "expire" event at its own index).
    Sync { now: i64 },
    /// A change to the users, roles or auth switch (etcd's writes under `/2`): takes an index
    /// like any write, fires no watcher.
    Auth(AuthChange),
}

/// The first byte of every encoded command.
pub const FORMAT_VERSION: u8 = 1;

const TAG_SET: u8 = 1;
const TAG_CREATE: u8 = 2;
const TAG_UPDATE: u8 = 3;
const TAG_COMPARE_AND_SWAP: u8 = 4;
const TAG_DELETE: u8 = 5;
const TAG_COMPARE_AND_DELETE: u8 = 6;
const TAG_SYNC: u8 = 7;
const TAG_AUTH: u8 = 8;

// Format: [u8 version = 1][u8 tag][fields of the variant, in declaration order]
//   integers are little-endian (u64, i64); str = u32 byte length + UTF-8 bytes;
//   bool = one byte, 0 or 1; Option<T> = one byte 0 (None), or 1 followed by T.
//   tag 1 Set              str key, str value, bool dir, opt i64 expire_at, bool refresh
//   tag 2 Create           str key, str value, bool dir, opt i64 expire_at, bool unique
//   tag 3 Update           str key, opt str value, bool dir, opt i64 expire_at, bool refresh
//   tag 4 CompareAndSwap   str key, str value, opt str prev_value, opt u64 prev_index,
//                          opt i64 expire_at, bool refresh
//   tag 5 Delete           str key, bool dir, bool recursive
//   tag 6 CompareAndDelete str key, opt str prev_value, opt u64 prev_index
//   tag 7 Sync             i64 now
//   tag 8 Auth             an `auth::state::AuthChange` encoding
// Decoding rejects unknown versions and tags, flags other than 0/1, invalid UTF-8, truncation
// and trailing bytes. A new field means a new version (a new variant a new tag); old versions
// stay readable.
impl Command {
    /// Appends the encoding of this command to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        codec::put_u8(out, FORMAT_VERSION);
        match self {
            Command::Set {
                key,
                value,
                dir,
                expire_at,
                refresh,
            } => {
                codec::put_u8(out, TAG_SET);
                codec::put_str(out, key);
                codec::put_str(out, value);
                codec::put_bool(out, *dir);
                codec::put_opt_i64(out, *expire_at);
                codec::put_bool(out, *refresh);
            }
            Command::Create {
                key,
                value,
                dir,
                expire_at,
                unique,
            } => {
                codec::put_u8(out, TAG_CREATE);
                codec::put_str(out, key);
                codec::put_str(out, value);
                codec::put_bool(out, *dir);
                codec::put_opt_i64(out, *expire_at);
                codec::put_bool(out, *unique);
            }
            Command::Update {
                key,
                value,
                dir,
                expire_at,
                refresh,
            } => {
                codec::put_u8(out, TAG_UPDATE);
                codec::put_str(out, key);
                codec::put_opt_str(out, value.as_deref());
                codec::put_bool(out, *dir);
                codec::put_opt_i64(out, *expire_at);
                codec::put_bool(out, *refresh);
            }
            Command::CompareAndSwap {
                key,
                value,
                prev_value,
                prev_index,
                expire_at,
                refresh,
            } => {
                codec::put_u8(out, TAG_COMPARE_AND_SWAP);
                codec::put_str(out, key);
                codec::put_str(out, value);
                codec::put_opt_str(out, prev_value.as_deref());
                codec::put_opt_u64(out, *prev_index);
                codec::put_opt_i64(out, *expire_at);
                codec::put_bool(out, *refresh);
            }
            Command::Delete {
                key,
                dir,
                recursive,
            } => {
                codec::put_u8(out, TAG_DELETE);
                codec::put_str(out, key);
                codec::put_bool(out, *dir);
                codec::put_bool(out, *recursive);
            }
            Command::CompareAndDelete {
                key,
                prev_value,
                prev_index,
            } => {
                codec::put_u8(out, TAG_COMPARE_AND_DELETE);
                codec::put_str(out, key);
                codec::put_opt_str(out, prev_value.as_deref());
                codec::put_opt_u64(out, *prev_index);
            }
            Command::Sync { now } => {
                codec::put_u8(out, TAG_SYNC);
                codec::put_i64(out, *now);
            }
            Command::Auth(change) => {
                codec::put_u8(out, TAG_AUTH);
                change.encode(out);
            }
        }
    }

    /// The encoding as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        self.encode(&mut out);
        out
    }

    /// Reads exactly one command; never panics, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Command, DecodeError> {
        let mut reader = Reader::new(bytes);
        let version = reader.u8()?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let r = &mut reader;
        let command = match r.u8()? {
            TAG_SET => Command::Set {
                key: r.string()?,
                value: r.string()?,
                dir: r.bool()?,
                expire_at: r.opt_i64()?,
                refresh: r.bool()?,
            },
            TAG_CREATE => Command::Create {
                key: r.string()?,
                value: r.string()?,
                dir: r.bool()?,
                expire_at: r.opt_i64()?,
                unique: r.bool()?,
            },
            TAG_UPDATE => Command::Update {
                key: r.string()?,
                value: r.opt_string()?,
                dir: r.bool()?,
                expire_at: r.opt_i64()?,
                refresh: r.bool()?,
            },
            TAG_COMPARE_AND_SWAP => Command::CompareAndSwap {
                key: r.string()?,
                value: r.string()?,
                prev_value: r.opt_string()?,
                prev_index: r.opt_u64()?,
                expire_at: r.opt_i64()?,
                refresh: r.bool()?,
            },
            TAG_DELETE => Command::Delete {
                key: r.string()?,
                dir: r.bool()?,
                recursive: r.bool()?,
            },
            TAG_COMPARE_AND_DELETE => Command::CompareAndDelete {
                key: r.string()?,
                prev_value: r.opt_string()?,
                prev_index: r.opt_u64()?,
            },
            TAG_SYNC => Command::Sync { now: r.i64()? },
            TAG_AUTH => Command::Auth(AuthChange::decode(r)?),
            other => return Err(DecodeError::UnknownTag(other)),
        };
        reader.finish()?;
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each variant, with every optional field both present and absent somewhere.
    fn every_variant() -> Vec<Command> {
        vec![
            Command::Set {
                key: "/a".into(),
                value: "v".into(),
                dir: false,
                expire_at: Some(-7),
                refresh: true,
            },
            Command::Set {
                key: "/d".into(),
                value: String::new(),
                dir: true,
                expire_at: None,
                refresh: false,
            },
            Command::Create {
                key: "/q".into(),
                value: "x".into(),
                dir: false,
                expire_at: Some(1 << 62),
                unique: true,
            },
            Command::Create {
                key: "/é".into(),
                value: "ü".into(),
                dir: true,
                expire_at: None,
                unique: false,
            },
            Command::Update {
                key: "/a".into(),
                value: Some("n".into()),
                dir: false,
                expire_at: None,
                refresh: false,
            },
            Command::Update {
                key: "/a".into(),
                value: None,
                dir: true,
                expire_at: Some(5),
                refresh: true,
            },
            Command::CompareAndSwap {
                key: "/a".into(),
                value: "n".into(),
                prev_value: Some("o".into()),
                prev_index: Some(u64::MAX),
                expire_at: Some(i64::MIN),
                refresh: false,
            },
            Command::CompareAndSwap {
                key: "/a".into(),
                value: String::new(),
                prev_value: None,
                prev_index: None,
                expire_at: None,
                refresh: true,
            },
            Command::Delete {
                key: "/a".into(),
                dir: true,
                recursive: false,
            },
            Command::Delete {
                key: "/".into(),
                dir: false,
                recursive: true,
            },
            Command::CompareAndDelete {
                key: "/a".into(),
                prev_value: Some("o".into()),
                prev_index: None,
            },
            Command::CompareAndDelete {
                key: "/a".into(),
                prev_value: None,
                prev_index: Some(3),
            },
            Command::Sync {
                now: 1_795_464_769_199_049_708,
            },
        ]
    }

    #[test]
    fn every_variant_round_trips() {
        for command in every_variant() {
            let bytes = command.to_bytes();
            assert_eq!(bytes[0], FORMAT_VERSION);
            assert_eq!(Command::decode(&bytes), Ok(command));
        }
    }

    #[test]
    fn sync_layout_is_version_tag_then_little_endian_time() {
        let bytes = Command::Sync { now: 0x0102 }.to_bytes();
        assert_eq!(bytes, [1, 7, 2, 1, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn every_strict_prefix_is_rejected() {
        for command in every_variant() {
            let bytes = command.to_bytes();
            for len in 0..bytes.len() {
                assert!(
                    Command::decode(&bytes[..len]).is_err(),
                    "{command:?} prefix {len}"
                );
            }
        }
    }

    #[test]
    fn bad_version_tag_flag_and_trailing_bytes_are_rejected() {
        let mut bytes = Command::Delete {
            key: "/a".into(),
            dir: true,
            recursive: false,
        }
        .to_bytes();
        bytes[0] = 2;
        assert_eq!(
            Command::decode(&bytes),
            Err(DecodeError::UnsupportedVersion(2))
        );
        bytes[0] = 1;
        bytes[1] = 99;
        assert_eq!(Command::decode(&bytes), Err(DecodeError::UnknownTag(99)));
        bytes[1] = TAG_DELETE;
        let dir_flag = bytes.len() - 2;
        bytes[dir_flag] = 2;
        assert_eq!(Command::decode(&bytes), Err(DecodeError::InvalidFlag(2)));
        bytes[dir_flag] = 1;
        bytes.push(0);
        assert_eq!(Command::decode(&bytes), Err(DecodeError::TrailingBytes(1)));
    }

    /// xorshift64*: a tiny deterministic PRNG for garbage inputs.
    fn next_random(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut decoded = 0;
        for round in 0..20_000 {
            let len = (next_random(&mut state) % 48) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next_random(&mut state) as u8).collect();
            // Half the time keep a valid version and tag so the field decoders get exercised.
            if round % 2 == 0 && bytes.len() >= 2 {
                bytes[0] = FORMAT_VERSION;
                bytes[1] = 1 + (bytes[1] % 7);
            }
            if let Ok(command) = Command::decode(&bytes) {
                assert_eq!(command.to_bytes(), bytes);
                decoded += 1;
            }
        }
        // Mutating single bytes of valid encodings: decode either fails or re-encodes exactly.
        for command in every_variant() {
            let bytes = command.to_bytes();
            for at in 0..bytes.len() {
                let mut mutated = bytes.clone();
                mutated[at] ^= (next_random(&mut state) as u8) | 1;
                if let Ok(back) = Command::decode(&mutated) {
                    assert_eq!(back.to_bytes(), mutated);
                    decoded += 1;
                }
            }
        }
        assert!(decoded > 0, "some mutations should still decode");
    }
}
