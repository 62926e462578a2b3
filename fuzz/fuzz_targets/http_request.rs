//! The HTTP/1.1 request parser (`tern::http::parse_request`) on arbitrary byte streams.
//!
//! Properties, under the default limits and under small ones:
//! - no panic; every complete request used at least one byte and at most the buffer;
//! - a complete request parses the same from exactly its own bytes;
//! - `Partial` never asks for fewer bytes than the buffer already holds;
//! - the stream fed whole, split in two, and in small pieces (sizes taken from the input, and
//!   re-parsing only once the buffer reaches what `Partial` said it needs, as the connection
//!   loop does) yields the same requests and ends the same way (same leftover or same status).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern::http::Limits;
use tern_fuzz::{feed_all_ways, small_limits};

fuzz_target!(|data: &[u8]| {
    feed_all_ways(data, &Limits::default());
    feed_all_ways(data, &small_limits());
});
