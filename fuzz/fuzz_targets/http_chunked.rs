//! Chunked request bodies: a fixed request head with `Transfer-Encoding: chunked`, then the
//! fuzz input as the body (and whatever follows it on the connection).
//!
//! Properties:
//! - the outcome of tern's parser agrees with the reference decoder below (complete with the
//!   same body and the same end, incomplete, or refused with the same status);
//! - whole, split and piecewise feeds agree (see `tern_fuzz::feed_all_ways`).
//!
//! The reference follows RFC 9112 §7.1 with tern's documented choices: a bare LF ends a line
//! (as Go's chunked reader allows), chunk data must be followed by exactly CRLF, extensions are
//! skipped without being checked, a chunk-size line (with its line end) is at most 4096 bytes
//! and its size at most 15 hex digits, trailer lines are `token ":" anything`, and the trailer
//! section counts against the header limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern::http::{parse_request, Limits, Parsed};
use tern_fuzz::{feed_all_ways, End};

const HEAD: &[u8] = b"POST /k HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
const MAX_LINE: usize = 4096;

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The body decodes to these bytes; the chunked encoding (trailers too) ends at `end`.
    Complete {
        body: Vec<u8>,
        end: usize,
    },
    Incomplete,
    Refused(u16),
}

/// One line from `at`: its content (without LF, and without one CR before the LF) and where
/// the next line starts; `None` when no LF follows.
fn line(data: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = &data[at..];
    let lf = rest.iter().position(|&b| b == b'\n')?;
    let content = rest[..lf].strip_suffix(b"\r").unwrap_or(&rest[..lf]);
    Some((content, at + lf + 1))
}

fn hex_size(line: &[u8]) -> Option<usize> {
    let size = line.split(|&b| b == b';').next().unwrap_or(&[]);
    let size = std::str::from_utf8(size).ok()?.trim_matches([' ', '\t']);
    if size.is_empty() || size.len() > 15 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    usize::from_str_radix(size, 16).ok()
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn reference(data: &[u8], limits: &Limits) -> Outcome {
    let mut at = 0;
    let mut body = Vec::new();
    loop {
        let Some((size_line, next)) = line(data, at) else {
            return if data.len() - at > MAX_LINE {
                Outcome::Refused(400)
            } else {
                Outcome::Incomplete
            };
        };
        if next - at > MAX_LINE {
            return Outcome::Refused(400);
        }
        let Some(size) = hex_size(size_line) else {
            return Outcome::Refused(400);
        };
        at = next;
        if size == 0 {
            break;
        }
        if body.len() + size > limits.max_body_bytes {
            return Outcome::Refused(413);
        }
        let Some(chunk) = data.get(at..at + size) else {
            return Outcome::Incomplete;
        };
        match data.get(at + size..at + size + 2) {
            None => return Outcome::Incomplete,
            Some(b"\r\n") => {}
            Some(_) => return Outcome::Refused(400),
        }
        body.extend_from_slice(chunk);
        at += size + 2;
    }
    let trailers = at;
    loop {
        let Some((trailer, next)) = line(data, at) else {
            return if data.len() - trailers > limits.max_header_bytes {
                Outcome::Refused(431)
            } else {
                Outcome::Incomplete
            };
        };
        if next - trailers > limits.max_header_bytes {
            return Outcome::Refused(431);
        }
        at = next;
        if trailer.is_empty() {
            return Outcome::Complete { body, end: at };
        }
        match trailer.iter().position(|&b| b == b':') {
            Some(colon) if colon > 0 && trailer[..colon].iter().all(|&b| is_tchar(b)) => {}
            _ => return Outcome::Refused(400),
        }
    }
}

fn check(data: &[u8], limits: &Limits) {
    let mut input = HEAD.to_vec();
    input.extend_from_slice(data);
    let got = match parse_request(&input, limits) {
        Ok(Parsed::Complete(mut req, used)) => Outcome::Complete {
            body: std::mem::take(&mut req.body),
            end: used - HEAD.len(),
        },
        Ok(Parsed::Partial(_)) => Outcome::Incomplete,
        Err(e) => Outcome::Refused(e.status()),
    };
    let want = reference(data, limits);
    assert_eq!(got, want, "tern (left) and the reference (right) disagree");
    let (reqs, end) = feed_all_ways(&input, limits);
    if let Outcome::Complete { body, .. } = &want {
        assert_eq!(&reqs[0].body, body);
    } else {
        assert!(reqs.is_empty());
        assert!(matches!(end, End::Leftover(_) | End::Error(_)));
    }
}

fuzz_target!(|data: &[u8]| {
    check(data, &Limits::default());
    check(
        data,
        &Limits {
            max_header_bytes: 128,
            max_body_bytes: 48,
            ..Limits::default()
        },
    );
});
