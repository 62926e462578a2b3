//! Byte-level building blocks shared by the command and snapshot formats: little-endian
//! integers, length-prefixed UTF-8 strings, strict booleans and options, a bounds-checked
//! reader, the decode error, and the snapshot checksum.
//!
//! Knows nothing about what the bytes mean. Reading never panics and never allocates more than
//! the input holds.

use std::fmt;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended inside a value.
    Truncated,
    /// The first byte names a format version this build does not read.
    UnsupportedVersion(u8),
    /// A tag byte (command kind, action, node kind) is not one of the known values.
    UnknownTag(u8),
    /// A boolean or option marker is neither 0 nor 1.
    InvalidFlag(u8),
    InvalidUtf8,
    /// Bytes are left after a complete value.
    TrailingBytes(usize),
    ChecksumMismatch {
        stored: u32,
        computed: u32,
    },
    /// The bytes are well formed but describe something impossible (e.g. a duplicate child).
    Inconsistent(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => write!(f, "input ends inside a value"),
            DecodeError::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            DecodeError::UnknownTag(t) => write!(f, "unknown tag {t}"),
            DecodeError::InvalidFlag(b) => write!(f, "invalid flag byte {b}"),
            DecodeError::InvalidUtf8 => write!(f, "string is not UTF-8"),
            DecodeError::TrailingBytes(n) => write!(f, "{n} bytes left after the value"),
            DecodeError::ChecksumMismatch { stored, computed } => {
                write!(
                    f,
                    "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
            DecodeError::Inconsistent(what) => write!(f, "inconsistent data: {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The snapshot checksum: 32-bit FNV-1a. One function so it can be swapped (e.g. for crc32c).
pub fn checksum(bytes: &[u8]) -> u32 {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(PRIME)
    })
}

pub fn put_u8(out: &mut Vec<u8>, value: u8) {
    out.push(value);
}

pub fn put_bool(out: &mut Vec<u8>, value: bool) {
    out.push(u8::from(value));
}

pub fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

pub fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

pub fn put_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Lengths are written as u32; a string longer than 4 GiB cannot occur in a raft entry.
pub fn put_str(out: &mut Vec<u8>, value: &str) {
    put_len(out, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// A count or length as u32 (saturating; nothing the store holds comes near 4 Gi items).
pub fn put_len(out: &mut Vec<u8>, len: usize) {
    put_u32(out, u32::try_from(len).unwrap_or(u32::MAX));
}

pub fn put_opt_str(out: &mut Vec<u8>, value: Option<&str>) {
    put_bool(out, value.is_some());
    if let Some(value) = value {
        put_str(out, value);
    }
}

pub fn put_opt_u64(out: &mut Vec<u8>, value: Option<u64>) {
    put_bool(out, value.is_some());
    if let Some(value) = value {
        put_u64(out, value);
    }
}

pub fn put_opt_i64(out: &mut Vec<u8>, value: Option<i64>) {
    put_bool(out, value.is_some());
    if let Some(value) = value {
        put_i64(out, value);
    }
}

/// Reads values front to back; every read checks the remaining length first.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < len {
            return Err(DecodeError::Truncated);
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take_array::<1>()?[0])
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError::InvalidFlag(other)),
        }
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take_array()?))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take_array()?))
    }

    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.take_array()?))
    }

    /// A count of items that follow, each at least `min_item_len` bytes: rejected early when the
    /// input cannot hold that many, so a forged count cannot make the caller over-allocate.
    pub fn count(&mut self, min_item_len: usize) -> Result<usize, DecodeError> {
        let count = usize::try_from(self.u32()?).map_err(|_| DecodeError::Truncated)?;
        if count.saturating_mul(min_item_len.max(1)) > self.rest.len() {
            return Err(DecodeError::Truncated);
        }
        Ok(count)
    }

    pub fn string(&mut self) -> Result<String, DecodeError> {
        let len = usize::try_from(self.u32()?).map_err(|_| DecodeError::Truncated)?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8)
    }

    pub fn opt_string(&mut self) -> Result<Option<String>, DecodeError> {
        Ok(if self.bool()? {
            Some(self.string()?)
        } else {
            None
        })
    }

    pub fn opt_u64(&mut self) -> Result<Option<u64>, DecodeError> {
        Ok(if self.bool()? {
            Some(self.u64()?)
        } else {
            None
        })
    }

    pub fn opt_i64(&mut self) -> Result<Option<i64>, DecodeError> {
        Ok(if self.bool()? {
            Some(self.i64()?)
        } else {
            None
        })
    }

    /// Everything not read yet (a trailing opaque part, e.g. a store snapshot in a payload).
    pub fn rest(self) -> &'a [u8] {
        self.rest
    }

    /// Succeeds only when every byte was read.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.rest.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let mut out = Vec::new();
        put_u8(&mut out, 7);
        put_bool(&mut out, true);
        put_u64(&mut out, u64::MAX);
        put_i64(&mut out, -5);
        put_str(&mut out, "héllo");
        put_opt_str(&mut out, None);
        put_opt_u64(&mut out, Some(9));
        put_opt_i64(&mut out, Some(i64::MIN));
        let mut reader = Reader::new(&out);
        assert_eq!(reader.u8().unwrap(), 7);
        assert!(reader.bool().unwrap());
        assert_eq!(reader.u64().unwrap(), u64::MAX);
        assert_eq!(reader.i64().unwrap(), -5);
        assert_eq!(reader.string().unwrap(), "héllo");
        assert_eq!(reader.opt_string().unwrap(), None);
        assert_eq!(reader.opt_u64().unwrap(), Some(9));
        assert_eq!(reader.opt_i64().unwrap(), Some(i64::MIN));
        reader.finish().unwrap();
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(Reader::new(&[2]).bool(), Err(DecodeError::InvalidFlag(2)));
        assert_eq!(Reader::new(&[1, 0]).u32(), Err(DecodeError::Truncated));
        assert_eq!(
            Reader::new(&[255, 255, 255, 255, b'a']).string(),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            Reader::new(&[1, 0, 0, 0, 0xff]).string(),
            Err(DecodeError::InvalidUtf8)
        );
        assert_eq!(
            Reader::new(&[0, 0, 0, 1]).count(1),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            Reader::new(&[1]).finish(),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn checksum_is_fnv1a_32() {
        assert_eq!(checksum(b""), 0x811c_9dc5);
        assert_eq!(checksum(b"a"), 0xe40c_292c);
        assert_eq!(checksum(b"foobar"), 0xbf9c_f968);
    }
}
