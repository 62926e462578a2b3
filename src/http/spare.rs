//! Per-thread spare buffers: what a finished request or response leaves behind for the next
//! one, so a connection that has served a request before serves the next without calling the
//! allocator for its path, query, header text, header spans, response body or response header
//! list.
//!
//! Each kind keeps at most [`KEEP`] buffers per thread and none over [`MAX_BYTES`] (a buffer
//! grown by one large request is freed, not hoarded). Knows nothing about what the buffers
//! hold.

use std::cell::RefCell;
use std::thread::LocalKey;

use super::response::HeaderValue;

/// Buffers of one kind a thread keeps.
pub const KEEP: usize = 64;
/// Largest buffer kept, in bytes of capacity.
pub const MAX_BYTES: usize = 16 * 1024;

type Pool<T> = LocalKey<RefCell<Vec<Vec<T>>>>;

thread_local! {
    /// Header text of requests and bodies of responses.
    pub static BYTES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    /// The spans of a request's headers.
    pub static SPANS: RefCell<Vec<Vec<[u32; 4]>>> = const { RefCell::new(Vec::new()) };
    /// Response header lists.
    pub static RESPONSE_HEADERS: RefCell<Vec<Vec<(&'static str, HeaderValue)>>> =
        const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room for `capacity`: a spare one when the thread has one.
pub fn take<T>(pool: &'static Pool<T>, capacity: usize) -> Vec<T> {
    let mut v = pool
        .try_with(|p| p.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_default();
    v.reserve(capacity);
    v
}

/// An empty string with room for `capacity` bytes, in a spare byte buffer when the thread has
/// one.
pub fn take_string(capacity: usize) -> String {
    // An empty buffer is valid UTF-8.
    String::from_utf8(take(&BYTES, capacity)).unwrap_or_default()
}

/// `text` in a spare buffer when the thread has one (an empty text takes none).
pub fn string(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    let mut s = take_string(text.len());
    s.push_str(text);
    s
}

/// Leaves `v`, emptied, for a later [`take`], unless it has no room at all or too much, or the
/// thread keeps enough already.
pub fn give<T>(pool: &'static Pool<T>, mut v: Vec<T>) {
    let bytes = v.capacity().saturating_mul(std::mem::size_of::<T>().max(1));
    if v.capacity() == 0 || bytes > MAX_BYTES {
        return;
    }
    v.clear();
    // `try_with`: a thread being torn down has no pool any more.
    let _ = pool.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < KEEP {
            p.push(v);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_buffer_comes_back_empty_and_large_ones_are_freed() {
        let mut v = take(&BYTES, 100);
        v.extend_from_slice(b"abc");
        let at = v.as_ptr();
        give(&BYTES, v);
        let again = take(&BYTES, 10);
        assert_eq!(again.as_ptr(), at, "the same buffer");
        assert!(again.is_empty() && again.capacity() >= 100);
        give(&BYTES, Vec::with_capacity(MAX_BYTES + 1));
        assert!(take(&BYTES, 0).capacity() <= MAX_BYTES, "not kept");
        for _ in 0..KEEP + 10 {
            give(&SPANS, Vec::with_capacity(4));
        }
        assert_eq!(SPANS.with(|p| p.borrow().len()), KEEP);
    }
}
