//! The streaming peer transport: one long-lived connection per peer and direction that
//! carries raft messages as raft produces them, with no HTTP answer per batch (etcd's
//! `stream` channels).
//!
//! The *receiver* opens it: every member keeps a `GET /raft/stream/<its own ID>` open to each
//! peer ([`run_reader`]), with the same cluster-ID and sender headers as a batch. The peer
//! answers `200` with a chunked body that never ends on its own: its handler attaches an
//! [`OutboundStream`] to its link to the requester, and from then on that link's queued
//! messages go out on the stream as frames (`[u32 LE length][protobuf Message]`, the batch
//! framing; a zero-length frame is a keep-alive, sent when the stream has been idle for
//! [`KEEPALIVE`]). A link holds at most one stream: a newer one from the same peer replaces
//! it. While a stream is attached, the link's own connection only sends the empty probe batch
//! (its answers keep the link's reachability and round-trip figures); when the stream ends
//! (the peer went away, its reader timed out and re-dialled, a probe failed, the peer was
//! removed) queued messages go out as batched `POST /raft/msgs` again until the peer's
//! reader is back. A message queued while the two hand over may go either way; raft
//! tolerates the reordering as it tolerates loss.
//!
//! The reader bounds each frame ([`FrameReader`]), drops a stream that brings nothing for
//! [`READ_TIMEOUT`] (three keep-alive periods) and re-dials with backoff; a peer without
//! streams (`404`) is asked again after [`NO_STREAMS_BACKOFF`]. Knows nothing about the store.

use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use futures_lite::{Future, Stream};
use glommio::timer::Timer;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};

use super::{
    connect, encode_batch, judge, next_backoff, request_headers, Context, Link, TransportStats,
    BACKOFF_MIN, BATCH_SPLIT, MAX_RESPONSE, REQUEST_TIMEOUT,
};
use crate::cluster::id_hex;
use crate::http::client::{encode_request, ClientConn};
use crate::shard::with_timeout;
use crate::shard::RaftInput;

/// Path prefix of the stream a member opens to receive from a peer; its ID follows.
pub const PATH_PREFIX: &str = "/raft/stream/";
/// An idle stream carries a keep-alive frame this often.
pub const KEEPALIVE: Duration = Duration::from_millis(500);
/// A stream that brings nothing for this long is taken for dead and re-dialled.
pub const READ_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long a member waits before asking again a peer that has no stream endpoint.
pub const NO_STREAMS_BACKOFF: Duration = Duration::from_secs(10);
/// The keep-alive frame: a length of zero.
const KEEPALIVE_FRAME: [u8; 4] = [0; 4];

/// Splits a byte stream that arrives in arbitrary pieces into messages, refusing a frame
/// longer than its bound before buffering it.
pub struct FrameReader {
    buf: Vec<u8>,
    pos: usize,
    max_frame: usize,
}

impl FrameReader {
    pub fn new(max_frame: usize) -> FrameReader {
        FrameReader {
            buf: Vec::new(),
            pos: 0,
            max_frame,
        }
    }

    /// Appends what arrived.
    pub fn push(&mut self, data: &[u8]) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next whole message, `Ok(None)` when more input is needed. Keep-alive frames are
    /// skipped. An error (a frame over the bound, a message that does not decode) ends the
    /// stream: nothing after it can be framed reliably.
    pub fn next_message(&mut self) -> Result<Option<Message>, String> {
        loop {
            let rest = &self.buf[self.pos..];
            if rest.len() < 4 {
                return Ok(None);
            }
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if len > self.max_frame {
                return Err(format!(
                    "a frame of {len} bytes (at most {} taken)",
                    self.max_frame
                ));
            }
            if len == 0 {
                self.pos += 4;
                continue;
            }
            if rest.len() < 4 + len {
                return Ok(None);
            }
            let msg = Message::parse_from_bytes(&rest[4..4 + len]).map_err(|e| e.to_string())?;
            self.pos += 4 + len;
            return Ok(Some(msg));
        }
    }

    /// Bytes held that do not make a whole frame yet.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// The body of a peer's `GET /raft/stream/…`: the link's queued messages as frames, for as
/// long as the stream stays attached to the link. Dropping it (the connection went away)
/// detaches it, and the link's batches take over.
pub struct OutboundStream {
    link: Rc<Link>,
    generation: u64,
    stats: Arc<TransportStats>,
    batch: Vec<Message>,
    /// Messages of `batch` already written (a large batch goes out in pieces).
    sent: usize,
    keepalive: Timer,
}

impl OutboundStream {
    pub(super) fn new(link: Rc<Link>, generation: u64, stats: Arc<TransportStats>) -> Self {
        OutboundStream {
            link,
            generation,
            stats,
            batch: Vec::new(),
            sent: 0,
            keepalive: Timer::new(KEEPALIVE),
        }
    }

    fn attached(&self) -> bool {
        !self.link.closed.get() && self.link.stream.get() == self.generation
    }

    /// Frames for the next piece of `batch`.
    fn encode_next(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        let (count, appends) = encode_batch(&self.batch[self.sent..], BATCH_SPLIT, &mut body);
        self.sent += count;
        if self.sent == self.batch.len() {
            self.batch.clear();
            self.sent = 0;
        }
        self.stats
            .streamed(self.link.peer, count as u64, appends, body.len() as u64);
        body
    }
}

impl Stream for OutboundStream {
    type Item = Vec<u8>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Vec<u8>>> {
        let this = self.get_mut();
        if !this.attached() {
            return Poll::Ready(None);
        }
        this.link.stream_waker.set(Some(cx.waker().clone()));
        if this.sent < this.batch.len() {
            this.keepalive.reset(KEEPALIVE);
            return Poll::Ready(Some(this.encode_next()));
        }
        let queued = Pin::new(&mut this.link.queue.recv_batch(&mut this.batch)).poll(cx);
        match queued {
            Poll::Ready(true) => {
                this.keepalive.reset(KEEPALIVE);
                Poll::Ready(Some(this.encode_next()))
            }
            Poll::Ready(false) => Poll::Ready(None),
            Poll::Pending => match Pin::new(&mut this.keepalive).poll(cx) {
                Poll::Ready(_) => {
                    this.keepalive.reset(KEEPALIVE);
                    Poll::Ready(Some(KEEPALIVE_FRAME.to_vec()))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl Drop for OutboundStream {
    fn drop(&mut self) {
        self.link.detach_stream(self.generation);
    }
}

/// How a stream a reader opened ended.
enum Ended {
    /// Dial again after the usual backoff.
    Retry,
    /// The peer has no stream endpoint.
    NotSupported,
}

/// Keeps a stream from the link's peer open for as long as the link exists, handing what it
/// brings to the raft inbox.
pub(super) async fn run_reader(link: Rc<Link>, ctx: Rc<Context>) {
    let mut backoff = BACKOFF_MIN;
    while !link.closed.get() {
        let pause = match read_stream(&link, &ctx).await {
            Ok(brought) => {
                if !link.closed.get() {
                    tracing::warn!(
                        "lost the TCP streaming connection with peer {} (stream reader)",
                        id_hex(link.peer)
                    );
                }
                if brought {
                    // It worked for a while: the next failure starts the backoff afresh.
                    backoff = BACKOFF_MIN;
                    BACKOFF_MIN
                } else {
                    // Taken but ended before anything came: not a reason to dial at once.
                    next_backoff(&mut backoff)
                }
            }
            Err(Ended::NotSupported) => NO_STREAMS_BACKOFF,
            Err(Ended::Retry) => next_backoff(&mut backoff),
        };
        glommio::timer::sleep(pause).await;
    }
}

/// One stream: dials, asks, and reads frames until the stream breaks. `Ok` when the peer
/// took the request (the stream was established), saying whether anything came on it.
async fn read_stream(link: &Link, ctx: &Context) -> Result<bool, Ended> {
    let urls = link.urls.borrow().clone();
    let (stream, host) = connect(&urls, ctx).await.ok_or(Ended::Retry)?;
    let mut conn = ClientConn::new(stream, MAX_RESPONSE);
    let mut request = Vec::new();
    let path = format!("{PATH_PREFIX}{}", id_hex(ctx.local));
    encode_request(
        "GET",
        &host,
        &path,
        &request_headers(ctx),
        &[],
        &mut request,
    );
    let head = with_timeout(REQUEST_TIMEOUT, async {
        conn.send(&request).await?;
        conn.read_head(false).await
    })
    .await
    .ok_or(Ended::Retry)?
    .map_err(|_| Ended::Retry)?;
    match head.status {
        200 => {}
        404 | 405 => return Err(Ended::NotSupported),
        status => {
            let _ = judge(status, head.header(super::CLUSTER_ID_HEADER), ctx);
            return Err(Ended::Retry);
        }
    }
    tracing::info!(
        "established a TCP streaming connection with peer {} (stream reader)",
        id_hex(link.peer)
    );
    let mut frames = FrameReader::new(ctx.max_frame);
    let mut brought = false;
    loop {
        let piece = match with_timeout(READ_TIMEOUT, conn.read_body()).await {
            Some(Ok(Some(piece))) => piece,
            // Ended by the peer (replaced, or its link went back to batches), broken, or
            // silent for too long.
            _ => break,
        };
        brought = true;
        if link.closed.get() {
            break;
        }
        frames.push(&piece);
        let (mut msgs, mut appends) = (0, 0);
        loop {
            match frames.next_message() {
                Ok(Some(m)) => {
                    msgs += 1;
                    appends += u64::from(m.get_msg_type() == MessageType::MsgAppend);
                    ctx.inbox.push(RaftInput::Peer(Box::new(m)));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("bad raft stream from {}: {e}", id_hex(link.peer));
                    ctx.stats.receive_failed(link.peer);
                    return Err(Ended::Retry);
                }
            }
        }
        // Every piece's bytes count, also those of a message that ends in a later piece.
        ctx.stats
            .received(link.peer, msgs, appends, piece.len() as u64);
        // A stream that always has more to read never makes this task wait: give the raft
        // loop, the other links and the peer port their turn once this task's time slice is
        // used up (a peer flooding its stream must not stall the shard).
        glommio::yield_if_needed().await;
    }
    Ok(brought)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iomem::run_local as run;
    use crate::transport::encode_frame;

    fn msg(i: u64, kind: MessageType) -> Message {
        let mut m = Message::default();
        m.set_msg_type(kind);
        m.index = i;
        m.to = 2;
        m.from = 1;
        m
    }

    #[test]
    fn frames_split_anywhere_come_out_whole_and_keepalives_vanish() {
        let msgs: Vec<Message> = (1..=5).map(|i| msg(i, MessageType::MsgAppend)).collect();
        let mut wire = Vec::new();
        for m in &msgs {
            wire.extend_from_slice(&KEEPALIVE_FRAME);
            encode_frame(m, &mut wire);
        }
        wire.extend_from_slice(&KEEPALIVE_FRAME);
        for piece in 1..wire.len() {
            let mut r = FrameReader::new(1 << 20);
            let mut back = Vec::new();
            for chunk in wire.chunks(piece) {
                r.push(chunk);
                while let Some(m) = r.next_message().unwrap() {
                    back.push(m);
                }
            }
            assert_eq!(back, msgs, "pieces of {piece}");
            assert_eq!(r.pending(), 0);
        }
    }

    fn decode(bytes: &[u8]) -> Vec<Message> {
        let mut r = FrameReader::new(1 << 20);
        r.push(bytes);
        std::iter::from_fn(|| r.next_message().unwrap()).collect()
    }

    #[test]
    fn a_stream_takes_the_queue_until_a_newer_one_replaces_it_then_batches_resume() {
        use futures_lite::StreamExt;
        run(async {
            let link = Rc::new(Link::new(2, &[]));
            let stats = Arc::new(TransportStats::default());
            let mut first = link.attach_stream(stats.clone());
            assert!(link.streaming());
            let (a, b) = (
                msg(1, MessageType::MsgAppend),
                msg(2, MessageType::MsgHeartbeat),
            );
            link.queue.push(a.clone());
            link.queue.push(b.clone());
            let bytes = first.next().await.expect("frames");
            assert_eq!(decode(&bytes), vec![a.clone(), b]);
            // Queued later, while the stream waits: it wakes and sends.
            let waiting = glommio::spawn_local(async move {
                let bytes = first.next().await.expect("frames");
                (first, bytes)
            });
            futures_lite::future::yield_now().await;
            link.queue.push(a.clone());
            let (mut first, bytes) = waiting.await;
            assert_eq!(decode(&bytes), vec![a.clone()]);
            // A newer stream from the same peer replaces it: the first one ends, and its
            // going away leaves the newer one attached.
            let mut second = link.attach_stream(stats.clone());
            assert_eq!(first.next().await, None);
            drop(first);
            assert!(link.streaming());
            // Idle: a keep-alive frame, which decodes to nothing.
            let idle = second.next().await.expect("keep-alive");
            assert_eq!(idle, KEEPALIVE_FRAME);
            assert!(decode(&idle).is_empty());
            // The connection goes away: the link's batches take over.
            drop(second);
            assert!(!link.streaming());
            assert_eq!(link.queue.len(), 0);
            let followers = stats.followers();
            assert_eq!(followers[0].1.success, 2, "appends streamed");
        });
    }

    #[test]
    fn a_stream_that_goes_away_hands_the_queue_back_to_a_waiting_link_task() {
        use futures_lite::StreamExt;
        run(async {
            let link = Rc::new(Link::new(2, &[]));
            let stats = Arc::new(TransportStats::default());
            // The link task waits for messages in batch mode.
            let waiting = glommio::spawn_local({
                let link = link.clone();
                async move {
                    let mut out = Vec::new();
                    link.recv_batch(&mut out).await;
                    out
                }
            });
            futures_lite::future::yield_now().await;
            // A stream attaches and waits on the queue too (its waker takes the queue's slot),
            // then its connection goes away before anything was queued.
            let mut s = link.attach_stream(stats);
            assert!(futures_lite::future::poll_once(s.next()).await.is_none());
            drop(s);
            link.queue.push(msg(7, MessageType::MsgHeartbeat));
            let got = crate::shard::with_timeout(Duration::from_secs(5), waiting).await;
            assert_eq!(got.map(|m| m.len()), Some(1), "the link task was not woken");
        });
    }

    #[test]
    fn a_link_ends_its_stream_when_probes_fail_or_it_closes() {
        use futures_lite::StreamExt;
        run(async {
            let link = Rc::new(Link::new(2, &[]));
            let stats = Arc::new(TransportStats::default());
            let mut s = link.attach_stream(stats.clone());
            let waiting = glommio::spawn_local(async move { s.next().await });
            futures_lite::future::yield_now().await;
            link.end_stream();
            assert_eq!(waiting.await, None);
            assert!(!link.streaming());
            let mut s = link.attach_stream(stats);
            link.close();
            assert_eq!(s.next().await, None);
        });
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_length_alone() {
        let mut r = FrameReader::new(100);
        r.push(&101u32.to_le_bytes());
        let e = r.next_message().unwrap_err();
        assert!(e.contains("101 bytes"), "{e}");
        // Exactly the bound is taken once it is all there.
        let mut r = FrameReader::new(100);
        r.push(&100u32.to_le_bytes());
        assert_eq!(r.next_message(), Ok(None));
    }

    #[test]
    fn a_frame_that_is_not_a_message_ends_the_stream() {
        let mut r = FrameReader::new(100);
        r.push(&3u32.to_le_bytes());
        r.push(&[0xff, 0xff, 0xff]);
        assert!(r.next_message().is_err());
    }
}
