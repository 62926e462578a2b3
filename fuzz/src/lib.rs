//! Helpers shared by the fuzz targets in `fuzz_targets/`.
//!
//! The HTTP helpers use only tern's public parser API (`parse_request`, `Limits`, `Parsed`);
//! [`needed`] is the one place that reads a `Progress` field.

use tern::http::{parse_request, Limits, Parsed, Progress, Request};

/// The buffer length the parser says it needs before it can advance, if it says.
pub fn needed(p: &Progress) -> Option<usize> {
    p.needed
}

/// How a feed of a byte stream to the parser ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// All input used; this many bytes were left unparsed (a request still incomplete).
    Leftover(usize),
    /// The parser refused the stream with this status.
    Error(u16),
}

/// Feeds `input` to the parser in pieces of the given sizes (cycled; a zero counts as one), as
/// a connection does: complete requests are drained from the front of the buffer, and after
/// a `Partial` the parser is asked again only once the buffer holds what it said it needs.
/// Checks the invariants every single answer must keep.
pub fn feed(
    input: &[u8],
    sizes: &mut dyn Iterator<Item = usize>,
    limits: &Limits,
) -> (Vec<Request>, End) {
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut need = 0usize;
    while pos < input.len() {
        let n = sizes.next().unwrap_or(input.len()).max(1);
        let end = pos.saturating_add(n).min(input.len());
        buf.extend_from_slice(&input[pos..end]);
        pos = end;
        while !buf.is_empty() && buf.len() >= need {
            match parse_request(&buf, limits) {
                Err(e) => return (out, End::Error(e.status())),
                Ok(Parsed::Complete(req, used)) => {
                    assert!(used > 0, "a complete request used no bytes");
                    assert!(
                        used <= buf.len(),
                        "consumed {used} of a {}-byte buffer",
                        buf.len()
                    );
                    check_request(&req, limits);
                    // The request's own bytes are enough to parse it, to the same result.
                    match parse_request(&buf[..used], limits) {
                        Ok(Parsed::Complete(again, used2)) => {
                            assert_eq!((&again, used2), (&req, used), "parse of its own bytes")
                        }
                        other => panic!("its own {used} bytes parse as {other:?}"),
                    }
                    buf.drain(..used);
                    out.push(req);
                    need = 0;
                }
                Ok(Parsed::Partial(p)) => {
                    if let Some(n) = needed(&p) {
                        assert!(
                            n > buf.len(),
                            "partial with {} bytes says it needs {n}",
                            buf.len()
                        );
                        need = n;
                    }
                    break;
                }
            }
        }
    }
    (out, End::Leftover(buf.len()))
}

/// What every parsed request must satisfy.
pub fn check_request(req: &Request, limits: &Limits) {
    assert!(
        req.body.len() <= limits.max_body_bytes,
        "body over the limit"
    );
    assert!(
        req.minor_version <= 1,
        "minor version {}",
        req.minor_version
    );
    assert!(!req.method.as_str().is_empty(), "empty method");
    assert!(
        req.path.is_empty() || req.path.starts_with('/') || req.path == "*",
        "path {:?}",
        req.path
    );
    assert!(!req.path.contains('?'), "path {:?} holds a '?'", req.path);
}

/// 64-bit FNV-1a: a cheap, stable hash to derive split points from an input.
pub fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Feeds `input` whole, split in two at a point derived from its hash, and in pieces whose
/// sizes are read from the input's own bytes; asserts that all three agree (same requests,
/// same ending). Returns the whole feed's result.
pub fn feed_all_ways(input: &[u8], limits: &Limits) -> (Vec<Request>, End) {
    let whole = feed(input, &mut std::iter::once(input.len()), limits);
    let split = (fnv(input) % (input.len() as u64 + 1)) as usize;
    let two = feed(input, &mut [split, input.len()].into_iter(), limits);
    assert_eq!(two, whole, "split at {split} differs from whole");
    let mut sizes = input.iter().cycle().map(|&b| 1 + usize::from(b % 16));
    let pieces = feed(input, &mut sizes, limits);
    assert_eq!(pieces, whole, "piecewise feed differs from whole");
    whole
}

/// Small limits, so that the 413 and 431 paths are reachable with short inputs.
pub fn small_limits() -> Limits {
    Limits {
        max_header_bytes: 256,
        max_body_bytes: 64,
        ..Limits::default()
    }
}
