//! The streaming peer transport's reader (`tern::transport::stream::FrameReader`): frames of
//! raft messages arriving in pieces of any size on a `GET /raft/stream/…` body, with
//! zero-length keep-alive frames between them.
//!
//! The first input byte sets the piece size (1–256 bytes), the rest is the stream.
//!
//! Properties: no panic; the messages (and the error, if any) are the same whatever the piece
//! size, as when the whole stream arrives at once; what the reader holds after taking every
//! whole frame is less than one frame of the bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raft::eraftpb::Message;
use tern::transport::stream::FrameReader;

const MAX_FRAME: usize = 4096;

/// Feeds `data` in pieces of `piece` bytes: the messages, and the error that ended it.
fn read(data: &[u8], piece: usize) -> (Vec<Message>, Option<String>) {
    let mut r = FrameReader::new(MAX_FRAME);
    let mut out = Vec::new();
    for chunk in data.chunks(piece) {
        r.push(chunk);
        loop {
            match r.next_message() {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
        assert!(r.pending() < 4 + MAX_FRAME, "holds {} bytes", r.pending());
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let piece = usize::from(first) + 1;
    let (whole, whole_err) = read(stream, stream.len().max(1));
    let (pieces, pieces_err) = read(stream, piece);
    assert_eq!(pieces_err, whole_err, "error differs with pieces of {piece}");
    assert_eq!(
        format!("{pieces:?}"),
        format!("{whole:?}"),
        "messages differ with pieces of {piece}"
    );
});
