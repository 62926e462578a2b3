//! etcd's numbered errors: one table maps each code to its message and HTTP status.
//!
//! Owns the wire form of an error (`{"errorCode":N,"message":"…","cause":"…","index":N}` plus a
//! trailing newline, as etcd writes it). Knows nothing about where an error came from: the store,
//! the API layer and raft all build an [`Error`] from a [`Code`], a cause and the store index.

use std::fmt;

/// One etcd v2 error code. The discriminant is the wire value of `errorCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Code {
    KeyNotFound = 100,
    TestFailed = 101,
    NotFile = 102,
    NoMorePeer = 103,
    NotDir = 104,
    NodeExist = 105,
    KeyIsPreserved = 106,
    RootReadOnly = 107,
    DirNotEmpty = 108,
    ExistingPeerAddr = 109,
    Unauthorized = 110,

    ValueRequired = 200,
    PrevValueRequired = 201,
    TtlNaN = 202,
    IndexNaN = 203,
    ValueOrTtlRequired = 204,
    TimeoutNaN = 205,
    NameRequired = 206,
    IndexOrValueRequired = 207,
    IndexValueMutex = 208,
    InvalidField = 209,
    InvalidForm = 210,
    RefreshValue = 211,
    RefreshTtlRequired = 212,

    RaftInternal = 300,
    LeaderElect = 301,

    WatcherCleared = 400,
    EventIndexCleared = 401,
    StandbyInternal = 402,
    InvalidActiveSize = 403,
    InvalidRemoveDelay = 404,

    ClientInternal = 500,
}

/// Every code, in wire order; used by tests and by anything that lists errors.
pub const ALL_CODES: &[Code] = &[
    Code::KeyNotFound,
    Code::TestFailed,
    Code::NotFile,
    Code::NoMorePeer,
    Code::NotDir,
    Code::NodeExist,
    Code::KeyIsPreserved,
    Code::RootReadOnly,
    Code::DirNotEmpty,
    Code::ExistingPeerAddr,
    Code::Unauthorized,
    Code::ValueRequired,
    Code::PrevValueRequired,
    Code::TtlNaN,
    Code::IndexNaN,
    Code::ValueOrTtlRequired,
    Code::TimeoutNaN,
    Code::NameRequired,
    Code::IndexOrValueRequired,
    Code::IndexValueMutex,
    Code::InvalidField,
    Code::InvalidForm,
    Code::RefreshValue,
    Code::RefreshTtlRequired,
    Code::RaftInternal,
    Code::LeaderElect,
    Code::WatcherCleared,
    Code::EventIndexCleared,
    Code::StandbyInternal,
    Code::InvalidActiveSize,
    Code::InvalidRemoveDelay,
    Code::ClientInternal,
];

impl Code {
    /// The wire value of `errorCode`.
    pub fn number(self) -> u16 {
        self as u16
    }

    /// etcd's message text for this code, byte for byte.
    pub fn message(self) -> &'static str {
        match self {
            Code::KeyNotFound => "Key not found",
            Code::TestFailed => "Compare failed",
            Code::NotFile => "Not a file",
            Code::NoMorePeer => "Reached the max number of peers in the cluster",
            Code::NotDir => "Not a directory",
            Code::NodeExist => "Key already exists",
            Code::KeyIsPreserved => "The prefix of given key is a keyword in etcd",
            Code::RootReadOnly => "Root is read only",
            Code::DirNotEmpty => "Directory not empty",
            Code::ExistingPeerAddr => "Peer address has existed",
            Code::Unauthorized => "The request requires user authentication",
            Code::ValueRequired => "Value is Required in POST form",
            Code::PrevValueRequired => "PrevValue is Required in POST form",
            Code::TtlNaN => "The given TTL in POST form is not a number",
            Code::IndexNaN => "The given index in POST form is not a number",
            Code::ValueOrTtlRequired => "Value or TTL is required in POST form",
            Code::TimeoutNaN => "The given timeout in POST form is not a number",
            Code::NameRequired => "Name is required in POST form",
            Code::IndexOrValueRequired => "Index or value is required",
            Code::IndexValueMutex => "Index and value cannot both be specified",
            Code::InvalidField => "Invalid field",
            Code::InvalidForm => "Invalid POST form",
            Code::RefreshValue => "Value provided on refresh",
            Code::RefreshTtlRequired => "A TTL must be provided on refresh",
            Code::RaftInternal => "Raft Internal Error",
            Code::LeaderElect => "During Leader Election",
            Code::WatcherCleared => "watcher is cleared due to etcd recovery",
            Code::EventIndexCleared => "The event in requested index is outdated and cleared",
            Code::StandbyInternal => "Standby Internal Error",
            Code::InvalidActiveSize => "Invalid active size",
            Code::InvalidRemoveDelay => "Standby remove delay",
            Code::ClientInternal => "Client Internal Error",
        }
    }

    /// The HTTP status etcd answers this code with (400 unless listed).
    pub fn http_status(self) -> u16 {
        match self {
            Code::KeyNotFound => 404,
            Code::NotFile | Code::DirNotEmpty => 403,
            Code::Unauthorized => 401,
            Code::TestFailed | Code::NodeExist => 412,
            Code::RaftInternal | Code::LeaderElect => 500,
            _ => 400,
        }
    }
}

/// An etcd error as it goes on the wire: code, optional cause, and the store index at the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    /// Free text that explains this occurrence (often the key); omitted from JSON when empty.
    pub cause: String,
    /// The store's current index when the error happened (0 for request validation errors).
    pub index: u64,
}

impl Error {
    pub fn new(code: Code, cause: impl Into<String>, index: u64) -> Error {
        Error {
            code,
            cause: cause.into(),
            index,
        }
    }

    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }

    /// Appends the JSON body etcd writes for this error, including its trailing newline.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"errorCode\":");
        out.extend_from_slice(self.code.number().to_string().as_bytes());
        out.extend_from_slice(b",\"message\":");
        write_json_string(out, self.code.message());
        if !self.cause.is_empty() {
            out.extend_from_slice(b",\"cause\":");
            write_json_string(out, &self.cause);
        }
        out.extend_from_slice(b",\"index\":");
        out.extend_from_slice(self.index.to_string().as_bytes());
        out.extend_from_slice(b"}\n");
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.cause.len());
        self.write_json(&mut out);
        out
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({}) [{}]",
            self.code.number(),
            self.code.message(),
            self.cause,
            self.index
        )
    }
}

impl std::error::Error for Error {}

/// Appends `s` as a JSON string literal, escaped the way Go's encoding/json does
/// (`<`, `>` and `&` as `\u003c`, `\u003e`, `\u0026`; U+2028/2029 escaped; invalid UTF-8 cannot occur in `&str`).
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Hot path (every key and value of every answer): skip eight plain bytes at a time.
        while let Some(word) = bytes.get(i..i + 8) {
            if may_need_escape(u64::from_le_bytes(word.try_into().unwrap())) {
                break;
            }
            i += 8;
        }
        let Some(&b) = bytes.get(i) else {
            break;
        };
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0x00..=0x1f | b'<' | b'>' | b'&' => None,
            0xe2 if bytes.get(i + 1) == Some(&0x80)
                && matches!(bytes.get(i + 2), Some(0xa8) | Some(0xa9)) =>
            {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(if bytes[i + 2] == 0xa8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                start = i;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]),
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `w` is below 0x20, one of `"\\<>&`, or not ASCII (U+2028/2029 start
/// with 0xe2). May say yes for a word that needs nothing (the per-byte loop then decides), never
/// no for one that does: the zero-byte test's borrow can only flag bytes above a real match.
#[inline]
fn may_need_escape(w: u64) -> bool {
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    (control
        | (w & HIGHS)
        | zero_in(w ^ (ONES * u64::from(b'"')))
        | zero_in(w ^ (ONES * u64::from(b'\\')))
        | zero_in(w ^ (ONES * u64::from(b'<')))
        | zero_in(w ^ (ONES * u64::from(b'>')))
        | zero_in(w ^ (ONES * u64::from(b'&'))))
        != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's encoding/json escaping, one byte at a time, spelled out.
    fn escaped_like_go(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{0}'..='\u{1f}' | '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn every_special_character_is_escaped_at_every_offset_of_a_word() {
        let specials = [
            "\"", "\\", "\n", "\r", "\t", "\u{0}", "\u{1f}", "<", ">", "&", "\u{2028}", "\u{2029}",
            "\u{2027}", "é", "\u{7f}", " ", "~", "€",
        ];
        for len in 0..20 {
            for at in 0..=len {
                for special in specials {
                    let plain: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
                    let s = format!("{}{special}{}", &plain[..at], &plain[at..]);
                    let mut out = Vec::new();
                    write_json_string(&mut out, &s);
                    assert_eq!(
                        String::from_utf8(out).unwrap(),
                        escaped_like_go(&s),
                        "{s:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_code_renders_its_json_byte_for_byte() {
        for &code in ALL_CODES {
            let e = Error::new(code, "/foo", 7);
            let want = format!(
                "{{\"errorCode\":{},\"message\":\"{}\",\"cause\":\"/foo\",\"index\":7}}\n",
                code.number(),
                code.message()
            );
            assert_eq!(String::from_utf8(e.to_json()).unwrap(), want, "{code:?}");
        }
    }

    #[test]
    fn empty_cause_is_omitted() {
        let e = Error::new(Code::KeyNotFound, "", 3);
        assert_eq!(
            e.to_json(),
            b"{\"errorCode\":100,\"message\":\"Key not found\",\"index\":3}\n"
        );
    }

    #[test]
    fn statuses_match_etcd() {
        let table = [
            (Code::KeyNotFound, 404),
            (Code::TestFailed, 412),
            (Code::NotFile, 403),
            (Code::NotDir, 400),
            (Code::NodeExist, 412),
            (Code::RootReadOnly, 400),
            (Code::DirNotEmpty, 403),
            (Code::Unauthorized, 401),
            (Code::PrevValueRequired, 400),
            (Code::TtlNaN, 400),
            (Code::IndexNaN, 400),
            (Code::InvalidField, 400),
            (Code::InvalidForm, 400),
            (Code::RaftInternal, 500),
            (Code::LeaderElect, 500),
            (Code::WatcherCleared, 400),
            (Code::EventIndexCleared, 400),
        ];
        for (code, status) in table {
            assert_eq!(code.http_status(), status, "{code:?}");
        }
    }

    #[test]
    fn codes_are_unique_and_numbered_as_etcd() {
        let mut seen = std::collections::HashSet::new();
        for &c in ALL_CODES {
            assert!(seen.insert(c.number()));
        }
        assert_eq!(Code::EventIndexCleared.number(), 401);
        assert_eq!(Code::InvalidForm.number(), 210);
    }

    #[test]
    fn json_strings_are_escaped_like_go() {
        let mut out = Vec::new();
        write_json_string(&mut out, "a\"b\\c\n<&>\u{1}\u{2028}é");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\n\\u003c\\u0026\\u003e\\u0001\\u2028é\""
        );
    }
}
