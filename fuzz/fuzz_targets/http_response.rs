//! HTTP/1.1 responses as every tern client reads them (`tern::http::decode`).
//!
//! Properties:
//! - never a panic, whatever the bytes;
//! - feeding the input whole, or in pieces of any size (the first byte picks it), gives the
//!   same responses: the same heads, the same bodies and the same end, or an error both ways;
//! - a body never exceeds its `Content-Length`, and a decoded response never claims more
//!   input than there was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern::http::decode::{Event, ResponseDecoder, ResponseHead};

type Decoded = (Vec<(ResponseHead, Vec<u8>)>, bool);

/// Decodes every response in `input`, `step` bytes at a time; `bool`: ended in an error.
fn decode(input: &[u8], step: usize) -> Decoded {
    let mut decoder = ResponseDecoder::new(false).with_limits(4096, 1 << 16);
    let mut out: Vec<(ResponseHead, Vec<u8>)> = Vec::new();
    let mut buf = Vec::new();
    let mut fed = 0;
    loop {
        let (n, event) = match decoder.decode(&buf) {
            Ok(x) => x,
            Err(_) => return (out, true),
        };
        assert!(n <= buf.len());
        let starved = n == 0 && event.is_none();
        match event {
            Some(Event::Head(h)) => out.push((h, Vec::new())),
            Some(Event::Data(d)) => out.last_mut().expect("data after a head").1.extend_from_slice(d),
            Some(Event::End) => {
                let (head, body) = out.last().expect("an end after a head");
                if let tern::http::decode::Framing::Length(len) = head.framing {
                    assert_eq!(body.len() as u64, len);
                }
                decoder.reset(false);
            }
            None => {}
        }
        buf.drain(..n);
        if starved {
            if fed == input.len() {
                if decoder.in_head() && buf.is_empty() {
                    return (out, false);
                }
                return (out, decoder.finish().is_err());
            }
            let end = (fed + step).min(input.len());
            buf.extend_from_slice(&input[fed..end]);
            fed = end;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let whole = decode(input, input.len().max(1));
    let pieces = decode(input, usize::from(first % 16) + 1);
    if !whole.1 && !pieces.1 {
        assert_eq!(whole, pieces);
    } else {
        // An error both ways; what was decoded before it agrees.
        assert_eq!(whole.1, pieces.1, "{whole:?} vs {pieces:?}");
    }
});
