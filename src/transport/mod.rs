//! The peer transport: raft messages between members over HTTP/1.1 on the peer URLs.
//!
//! Owns, on shard 0, one outbound link per peer and the peer-side HTTP endpoints
//! ([`peer_api`]). A link's messages go out on the stream the peer keeps open to receive them
//! ([`stream`]: frames as raft produces them, no answer per batch) whenever there is one, and
//! otherwise on the link's own kept-alive connection as `POST /raft/msgs` requests, one per
//! batch: every message queued for the peer while the previous batch was in flight goes in the
//! next one (batching; a batch over [`BATCH_SPLIT`] bytes goes out in several requests, so the
//! receiver can bound a request's body). A link holds at most [`MAX_QUEUED`] messages
//! (back-pressure: raft retransmits what is dropped), and a broken link reconnects with
//! exponential backoff and tells raft the peer is unreachable. Snapshots go out on their own
//! connection (`POST /raft/snapshot`) so a large transfer never delays heartbeats. Every
//! request carries the cluster ID and the sender's member ID; the receiver refuses a different
//! cluster (412), a removed member (410) and a sender it does not know as a member (403, tried
//! again later). An idle link (and every link while a stream carries its messages) sends an
//! empty batch every half second, which keeps [`Transport::is_active`] true for every reachable
//! peer and measures the round trip.
//!
//! Wire format of a batch body: `([u32 LE length][protobuf raft Message])*`; of a snapshot
//! body: one such frame with the snapshot's data left out, then the data
//! ([`incoming`], which the receiver streams to a file).
//! Knows nothing about the store; raft messages are opaque protobuf here.

pub mod incoming;
pub mod peer_api;
pub mod stats;
pub mod stream;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};

use crate::cluster::id_hex;
use crate::http::client::{encode_request, ClientConn};
use crate::raft::{Fatal, PeerSender};
use crate::ratelog::RateLimited;
use crate::shard::local::Mailbox;
use crate::shard::with_timeout;
use crate::shard::RaftInput;
use crate::tls::reload::Reloading;
use crate::tls::stream::MaybeTls;

/// A connection to a peer, TLS for an `https://` URL.
type PeerStream = MaybeTls<glommio::net::TcpStream>;
pub use stats::TransportStats;

/// Messages a link may hold for a peer that is slow or away; more are dropped.
pub const MAX_QUEUED: usize = 8192;
/// Header names (etcd's rafthttp uses the same).
pub const CLUSTER_ID_HEADER: &str = "X-Etcd-Cluster-ID";
pub const FROM_HEADER: &str = "X-Server-From";
/// Most bytes of frames one `POST /raft/msgs` body carries; a larger batch goes out in
/// several requests (a single larger message goes alone).
pub const BATCH_SPLIT: usize = 64 << 20;
/// Largest response a peer may send.
const MAX_RESPONSE: usize = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(60);
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Appends one message to a batch body.
pub fn encode_frame(msg: &Message, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    if msg.write_to_vec(out).is_err() {
        out.truncate(start);
        return;
    }
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Largest `/raft/msgs` body a member takes when client requests may be `max_request_bytes`
/// long: a split batch, or one message alone. A message carries at most 1 MiB of entries
/// (raft's `max_size_per_msg`) or one larger entry, and an entry holds one client request,
/// so twice that request plus a MiB bounds it generously.
pub fn max_batch_body(max_request_bytes: usize) -> usize {
    BATCH_SPLIT.max(max_request_bytes.saturating_mul(2).saturating_add(1 << 20))
}

/// Encodes messages from the start of `msgs` into `body` (cleared first) while it stays within
/// `split` bytes, and at least one. Returns how many went in and how many of them are appends.
fn encode_batch(msgs: &[Message], split: usize, body: &mut Vec<u8>) -> (usize, u64) {
    body.clear();
    let mut appends = 0;
    for (i, m) in msgs.iter().enumerate() {
        let before = body.len();
        encode_frame(m, body);
        if body.len() > split && i > 0 {
            body.truncate(before);
            return (i, appends);
        }
        appends += u64::from(m.get_msg_type() == MessageType::MsgAppend);
    }
    (msgs.len(), appends)
}

/// Splits a batch body into messages.
pub fn decode_frames(mut body: &[u8]) -> Result<Vec<Message>, String> {
    let mut out = Vec::new();
    while !body.is_empty() {
        if body.len() < 4 {
            return Err("truncated frame length".into());
        }
        let len = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
        body = &body[4..];
        if body.len() < len {
            return Err(format!("frame of {len} bytes, {} left", body.len()));
        }
        let msg = Message::parse_from_bytes(&body[..len]).map_err(|e| e.to_string())?;
        out.push(msg);
        body = &body[len..];
    }
    Ok(out)
}

/// `host:port` of an `http://host:port[/…]` URL.
pub fn url_authority(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    (!authority.is_empty()).then_some(authority)
}

struct Link {
    peer: u64,
    urls: RefCell<Vec<String>>,
    queue: Rc<Mailbox<Message>>,
    closed: Cell<bool>,
    /// When the current run of successful deliveries began; `None` while the peer is away.
    active_since: Cell<Option<Instant>>,
    /// The generation of the stream that takes the queued messages, 0 while none does (the
    /// link's batches do).
    stream: Cell<u64>,
    /// Stream generations handed out so far.
    streams: Cell<u64>,
    /// The attached stream's task, woken when the stream must end.
    stream_waker: Cell<Option<Waker>>,
    /// The link task while it waits for the stream to end.
    task_waker: Cell<Option<Waker>>,
}

impl Link {
    fn new(peer: u64, urls: &[String]) -> Link {
        Link {
            peer,
            urls: RefCell::new(urls.to_vec()),
            queue: Mailbox::new(),
            closed: Cell::new(false),
            active_since: Cell::new(None),
            stream: Cell::new(0),
            streams: Cell::new(0),
            stream_waker: Cell::new(None),
            task_waker: Cell::new(None),
        }
    }

    fn streaming(&self) -> bool {
        self.stream.get() != 0
    }

    /// Makes a new stream the one that takes the queued messages; the one before it ends.
    fn attach_stream(self: &Rc<Self>, stats: Arc<TransportStats>) -> stream::OutboundStream {
        let generation = self.streams.get() + 1;
        self.streams.set(generation);
        if !self.streaming() {
            tracing::info!(
                "established a TCP streaming connection with peer {} (stream writer)",
                id_hex(self.peer)
            );
        }
        self.stream.set(generation);
        self.wake_stream();
        // The peer reached this member and passed its checks: it is there (etcd activates a
        // peer when its stream connects, too).
        self.set_active(true, &stats);
        stream::OutboundStream::new(self.clone(), generation, stats)
    }

    /// A stream went away; if it was the current one, the link's batches take over.
    fn detach_stream(&self, generation: u64) {
        if self.stream.get() == generation {
            self.lost_stream();
            self.wake_task();
        }
    }

    /// Ends the current stream (its peer does not answer, or the link is gone).
    fn end_stream(&self) {
        if self.streaming() {
            self.lost_stream();
            self.wake_stream();
            self.wake_task();
        }
    }

    fn lost_stream(&self) {
        self.stream.set(0);
        if !self.closed.get() {
            tracing::warn!(
                "lost the TCP streaming connection with peer {} (stream writer)",
                id_hex(self.peer)
            );
        }
    }

    fn wake_stream(&self) {
        if let Some(w) = self.stream_waker.take() {
            w.wake();
        }
    }

    fn wake_task(&self) {
        if let Some(w) = self.task_waker.take() {
            w.wake();
        }
    }

    /// The link task's wait for queued messages: like the queue's own, but a stream that took
    /// the queue's waker slot meanwhile and went away again wakes this task too (through
    /// `task_waker`), so messages queued after it are not left waiting for the probe timer.
    async fn recv_batch(&self, out: &mut Vec<Message>) -> bool {
        use std::future::Future;
        futures_lite::future::poll_fn(|cx| {
            self.task_waker.set(Some(cx.waker().clone()));
            std::pin::Pin::new(&mut self.queue.recv_batch(&mut *out)).poll(cx)
        })
        .await
    }

    /// Waits until no stream takes the messages (or the link closed), at most `limit`.
    async fn wait_detached(&self, limit: Duration) {
        let detached = futures_lite::future::poll_fn(|cx| {
            if !self.streaming() || self.closed.get() {
                return Poll::Ready(());
            }
            self.task_waker.set(Some(cx.waker().clone()));
            Poll::Pending
        });
        with_timeout(limit, detached).await;
    }

    fn close(&self) {
        self.closed.set(true);
        self.queue.close();
        self.end_stream();
        self.wake_task();
    }

    /// Records whether messages reach the peer now (for raft's checks and `/metrics`).
    fn set_active(&self, active: bool, stats: &TransportStats) {
        if active == self.active_since.get().is_some() {
            return;
        }
        self.active_since.set(active.then(Instant::now));
        stats.set_active(self.peer, active);
        if active {
            tracing::info!("peer {} became active", id_hex(self.peer));
        } else {
            tracing::warn!("peer {} became inactive", id_hex(self.peer));
        }
    }
}

/// What every link task needs.
struct Context {
    local: u64,
    /// The address outgoing peer connections are made from (`None`: the kernel's choice).
    source: Option<IpAddr>,
    /// What `https://` peers are dialled with (re-read when its files change).
    tls: Arc<Reloading<rustls::ClientConfig>>,
    cluster: u64,
    inbox: Rc<Mailbox<RaftInput>>,
    stats: Arc<TransportStats>,
    /// Largest frame a stream from a peer may carry (as a `/raft/msgs` body).
    max_frame: usize,
}

/// This member's links to its peers, shared by raft's [`Transport`] (which queues messages on
/// them) and the peer API (which attaches the streams peers open to receive them).
#[derive(Default)]
pub struct Links {
    map: RefCell<HashMap<u64, Rc<Link>>>,
}

impl Links {
    /// The body of a stream `peer` opened to receive its messages, which from now on go out
    /// on it; `None` when this member has no link to `peer` (not a member it knows yet).
    pub fn attach_stream(
        &self,
        peer: u64,
        stats: Arc<TransportStats>,
    ) -> Option<stream::OutboundStream> {
        let link = self.map.borrow().get(&peer).cloned()?;
        Some(link.attach_stream(stats))
    }
}

/// How the transport reaches its peers, beside the member and cluster IDs.
pub struct Settings {
    /// The address outgoing peer connections are made from (`None`: the kernel's choice).
    pub source: Option<IpAddr>,
    /// What `https://` peers are dialled with.
    pub tls: Arc<Reloading<rustls::ClientConfig>>,
    pub stats: Arc<TransportStats>,
    /// The links, shared with the peer API.
    pub links: Rc<Links>,
    /// Largest message frame taken from a peer ([`max_batch_body`]).
    pub max_frame: usize,
}

/// Outbound raft traffic of this member (shard 0 only).
pub struct Transport {
    ctx: Rc<Context>,
    links: Rc<Links>,
}

impl Transport {
    pub fn new(
        local: u64,
        cluster: u64,
        settings: Settings,
        inbox: Rc<Mailbox<RaftInput>>,
    ) -> Transport {
        Transport {
            ctx: Rc::new(Context {
                local,
                source: settings.source,
                tls: settings.tls,
                cluster,
                inbox,
                stats: settings.stats,
                max_frame: settings.max_frame,
            }),
            links: settings.links,
        }
    }
}

impl PeerSender for Transport {
    /// Makes the links match the member list: new peers get a link, removed ones lose theirs,
    /// changed peer URLs are used from the next connection on.
    fn set_peers<'a>(&self, peers: impl Iterator<Item = (u64, &'a [String])>) {
        let mut links = self.links.map.borrow_mut();
        let mut seen = Vec::new();
        for (id, urls) in peers {
            if id == self.ctx.local {
                continue;
            }
            seen.push(id);
            if let Some(link) = links.get(&id) {
                *link.urls.borrow_mut() = urls.to_vec();
                continue;
            }
            let link = Rc::new(Link::new(id, urls));
            links.insert(id, link.clone());
            glommio::spawn_local(stream::run_reader(link.clone(), self.ctx.clone())).detach();
            glommio::spawn_local(run_link(link, self.ctx.clone())).detach();
        }
        links.retain(|id, link| {
            let keep = seen.contains(id);
            if !keep {
                link.close();
                self.ctx.stats.remove_follower(*id);
            }
            keep
        });
    }

    /// Whether messages reach `peer` right now.
    fn is_active(&self, peer: u64) -> bool {
        self.links
            .map
            .borrow()
            .get(&peer)
            .is_some_and(|l| l.active_since.get().is_some())
    }

    /// Queues raft's outgoing messages; never waits.
    fn send(&self, msgs: Vec<Message>) {
        let links = self.links.map.borrow();
        for msg in msgs {
            let Some(link) = links.get(&msg.to) else {
                continue;
            };
            if msg.get_msg_type() == MessageType::MsgSnapshot {
                let urls = link.urls.borrow().clone();
                glommio::spawn_local(send_snapshot(msg, urls, self.ctx.clone())).detach();
            } else if link.queue.len() < MAX_QUEUED {
                link.queue.push(msg);
            } else {
                self.ctx.stats.send_failed(msg.to);
            }
        }
    }
}

fn request_headers(ctx: &Context) -> [(&'static str, String); 3] {
    [
        ("Content-Type", "application/octet-stream".into()),
        (CLUSTER_ID_HEADER, id_hex(ctx.cluster)),
        (FROM_HEADER, id_hex(ctx.local)),
    ]
}

/// A connection to the first of `urls` that answers (TLS for `https://` ones), and the
/// authority to name in requests.
async fn connect(urls: &[String], ctx: &Context) -> Option<(PeerStream, String)> {
    static HANDSHAKE: RateLimited = RateLimited::new(crate::ratelog::DEFAULT_INTERVAL);
    for url in urls {
        let Some(authority) = url_authority(url) else {
            continue;
        };
        let Ok(addrs) = crate::dns::resolve(authority).await else {
            continue;
        };
        for addr in addrs {
            let connected = match ctx.source {
                Some(ip) if ip.is_ipv4() == addr.is_ipv4() => connect_from(ip, addr).await,
                _ => glommio::net::TcpStream::connect_timeout(addr, CONNECT_TIMEOUT)
                    .await
                    .map_err(io::Error::from),
            };
            let Ok(stream) = connected else { continue };
            let _ = stream.set_nodelay(true);
            if !url.starts_with("https://") {
                return Some((MaybeTls::Plain(stream), authority.to_string()));
            }
            match tls_handshake(stream, authority, ctx).await {
                Ok(tls) => return Some((MaybeTls::Tls(Box::new(tls)), authority.to_string())),
                Err(e) => {
                    crate::ratelog!(HANDSHAKE, "peer TLS handshake with {url} failed: {e}");
                }
            }
        }
    }
    None
}

/// The client side of a peer TLS handshake: the peer's certificate must name the host of its
/// URL (as Go's TLS client checks).
async fn tls_handshake(
    stream: glommio::net::TcpStream,
    authority: &str,
    ctx: &Context,
) -> io::Result<futures_rustls::client::TlsStream<glommio::net::TcpStream>> {
    let name = crate::tls::client::server_name(authority)?;
    let connector = futures_rustls::TlsConnector::from(ctx.tls.get());
    with_timeout(HANDSHAKE_TIMEOUT, connector.connect(name, stream))
        .await
        .unwrap_or_else(|| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "handshake timed out",
            ))
        })
}

/// Connects from `source` (the address this member listens on for peers), so traffic between
/// members has their own addresses at both ends (firewall rules and partitions by address
/// work). glommio cannot bind before connecting, so the connect runs on a blocking thread.
async fn connect_from(source: IpAddr, addr: SocketAddr) -> io::Result<glommio::net::TcpStream> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let fd = glommio::executor()
        .spawn_blocking(move || -> io::Result<std::os::fd::OwnedFd> {
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::STREAM,
                None,
            )?;
            socket.bind(&SocketAddr::new(source, 0).into())?;
            socket.connect_timeout(&addr.into(), CONNECT_TIMEOUT)?;
            Ok(socket.into())
        })
        .await?;
    // SAFETY: `fd` is a connected TCP socket we own; ownership moves to glommio.
    Ok(unsafe { glommio::net::TcpStream::from_raw_fd(fd.into_raw_fd()) })
}

/// The pause before the next attempt, `backoff`, which doubles (up to [`BACKOFF_MAX`]) for the
/// one after.
fn next_backoff(backoff: &mut Duration) -> Duration {
    let pause = *backoff;
    *backoff = (pause * 2).min(BACKOFF_MAX);
    pause
}

/// What the peer's answer to a batch means for the link.
enum Verdict {
    Delivered,
    Reconnect,
}

/// A peer of another cluster, or one that says this member was removed, means this member
/// must not run (etcd exits too). `their_cluster` is the answer's cluster-ID header.
fn judge(status: u16, their_cluster: Option<&str>, ctx: &Context) -> Verdict {
    match status {
        204 | 200 => Verdict::Delivered,
        410 => {
            ctx.inbox.push(RaftInput::Halt(Fatal::Removed));
            Verdict::Reconnect
        }
        412 => {
            let theirs = their_cluster.unwrap_or("unknown").to_string();
            ctx.inbox.push(RaftInput::Halt(Fatal::ForeignCluster {
                ours: ctx.cluster,
                theirs,
            }));
            Verdict::Reconnect
        }
        _ => Verdict::Reconnect,
    }
}

async fn run_link(link: Rc<Link>, ctx: Rc<Context>) {
    let mut backoff = BACKOFF_MIN;
    let mut batch = Vec::new();
    while !link.closed.get() {
        let urls = link.urls.borrow().clone();
        let Some((stream, host)) = connect(&urls, &ctx).await else {
            if link.streaming() {
                // The peer reaches this member and takes its messages on its stream: this
                // connection is for probes only, try it again later.
                glommio::timer::sleep(next_backoff(&mut backoff)).await;
                continue;
            }
            // Nobody to give them to: raft resends what matters once the peer is back.
            let mut dropped = Vec::new();
            if !link.queue.is_empty() {
                link.queue.recv_batch(&mut dropped).await;
                ctx.stats.send_failed(link.peer);
            }
            link.set_active(false, &ctx.stats);
            ctx.inbox.push(RaftInput::Unreachable(link.peer));
            glommio::timer::sleep(next_backoff(&mut backoff)).await;
            continue;
        };
        backoff = BACKOFF_MIN;
        let mut conn = ClientConn::new(stream, MAX_RESPONSE);
        let mut body = Vec::new();
        let mut request = Vec::new();
        // What a broken connection left unsent is dropped: raft resends what matters.
        batch.clear();
        // Messages of `batch` sent; a batch goes out in pieces of at most BATCH_SPLIT bytes.
        let mut sent = 0;
        // Whether the last request was a probe while a stream carried the messages: a stream
        // that just attached gets its first probe (reachability, the follower's latency) at
        // once, later ones every PROBE_INTERVAL.
        let mut probed_stream = false;
        loop {
            if sent >= batch.len() {
                batch.clear();
                sent = 0;
                if link.streaming() && probed_stream {
                    // The peer's stream carries the messages; this connection only probes,
                    // or takes over at once when the stream ends.
                    link.wait_detached(PROBE_INTERVAL).await;
                    if link.closed.get() {
                        return;
                    }
                }
                if !link.streaming() {
                    // An idle link sends an empty batch now and then, so whether the peer is
                    // reachable stays known (the strict reconfiguration check asks) even when
                    // raft has nothing to say to it (a follower talks to the leader only).
                    let more = with_timeout(PROBE_INTERVAL, link.recv_batch(&mut batch)).await;
                    // A stream that attached meanwhile may have lost its place as the queue's
                    // waker to this wait: let it take it back.
                    link.wake_stream();
                    if more == Some(false) || link.closed.get() {
                        return;
                    }
                }
            }
            let (count, appends) = encode_batch(&batch[sent..], BATCH_SPLIT, &mut body);
            sent += count;
            probed_stream = count == 0 && link.streaming();
            request.clear();
            encode_request(
                "POST",
                &host,
                "/raft/msgs",
                &request_headers(&ctx),
                &body,
                &mut request,
            );
            let started = Instant::now();
            let answer = with_timeout(REQUEST_TIMEOUT, conn.round_trip(&request, false)).await;
            let verdict = answer.as_ref().map(|a| match a {
                Ok(resp) => judge(resp.status, resp.header(CLUSTER_ID_HEADER), &ctx),
                Err(_) => Verdict::Reconnect,
            });
            if !matches!(verdict, Some(Verdict::Delivered)) {
                // A peer that does not take batches cannot be taking the stream either: ending
                // it makes its reader (if it is there at all) dial again.
                link.end_stream();
            }
            match (answer, verdict) {
                (Some(Ok(resp)), Some(Verdict::Delivered)) => {
                    link.set_active(true, &ctx.stats);
                    if count == 0 {
                        ctx.stats
                            .probed(link.peer, started.elapsed(), link.streaming());
                    } else {
                        ctx.stats.sent(
                            link.peer,
                            count as u64,
                            appends,
                            body.len() as u64,
                            started.elapsed(),
                        );
                    }
                    if !resp.keep_alive {
                        break;
                    }
                }
                (Some(Ok(_)), _) => {
                    link.set_active(false, &ctx.stats);
                    ctx.stats.send_failed(link.peer);
                    glommio::timer::sleep(BACKOFF_MAX).await;
                    break;
                }
                _ => {
                    link.set_active(false, &ctx.stats);
                    ctx.stats.send_failed(link.peer);
                    ctx.inbox.push(RaftInput::Unreachable(link.peer));
                    break;
                }
            }
        }
    }
}

/// Sends one snapshot message on a connection of its own and tells raft how it went.
async fn send_snapshot(msg: Message, urls: Vec<String>, ctx: Rc<Context>) {
    let to = msg.to;
    let started = Instant::now();
    let body = incoming::encode_snapshot_body(&msg);
    drop(msg);
    let ok = async {
        let (stream, host) = connect(&urls, &ctx).await?;
        let mut request = Vec::with_capacity(body.len() + 256);
        encode_request(
            "POST",
            &host,
            "/raft/snapshot",
            &request_headers(&ctx),
            &body,
            &mut request,
        );
        let mut conn = ClientConn::new(stream, MAX_RESPONSE);
        let resp = with_timeout(SNAPSHOT_TIMEOUT, conn.round_trip(&request, false))
            .await?
            .ok()?;
        let verdict = judge(resp.status, resp.header(CLUSTER_ID_HEADER), &ctx);
        Some(matches!(verdict, Verdict::Delivered))
    }
    .await
    .unwrap_or(false);
    ctx.stats.snapshot_sent(to, ok, started.elapsed());
    if ok {
        tracing::info!("sent a snapshot of {} bytes to {}", body.len(), id_hex(to));
    } else {
        ctx.stats.send_failed(to);
    }
    ctx.inbox.push(RaftInput::SnapshotSent { to, ok });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_refuse_truncation() {
        let mut body = Vec::new();
        let mut a = Message::default();
        a.set_msg_type(MessageType::MsgHeartbeat);
        a.to = 2;
        a.from = 1;
        a.term = 5;
        let mut b = Message::default();
        b.set_msg_type(MessageType::MsgAppend);
        b.to = 2;
        b.index = 9;
        encode_frame(&a, &mut body);
        encode_frame(&b, &mut body);
        let back = decode_frames(&body).unwrap();
        assert_eq!(back, vec![a, b]);
        for cut in 1..body.len() {
            // Every strict prefix either fails or decodes fewer messages.
            if let Ok(msgs) = decode_frames(&body[..cut]) {
                assert!(msgs.len() < 2);
            }
        }
        assert!(decode_frames(&[1, 0, 0]).is_err());
        assert!(decode_frames(&[]).unwrap().is_empty());
    }

    #[test]
    fn large_batches_split_and_every_message_goes_once() {
        let msgs: Vec<Message> = (0..10)
            .map(|i| {
                let mut m = Message::default();
                m.set_msg_type(if i % 2 == 0 {
                    MessageType::MsgAppend
                } else {
                    MessageType::MsgHeartbeat
                });
                m.index = i;
                m.context = vec![b'c'; 100].into();
                m
            })
            .collect();
        let mut body = Vec::new();
        let (n, appends) = encode_batch(&msgs, usize::MAX, &mut body);
        assert_eq!((n, appends), (10, 5));
        assert_eq!(decode_frames(&body).unwrap(), msgs);
        // Small pieces: each within the split, together every message in order.
        let split = 350;
        let mut sent = 0;
        let mut back = Vec::new();
        while sent < msgs.len() {
            let (n, _) = encode_batch(&msgs[sent..], split, &mut body);
            assert!(n > 0 && body.len() <= split, "{n} {}", body.len());
            sent += n;
            back.extend(decode_frames(&body).unwrap());
        }
        assert_eq!(back, msgs);
        // A message larger than the split goes alone.
        let (n, _) = encode_batch(&msgs, 10, &mut body);
        assert_eq!(n, 1);
        assert_eq!(decode_frames(&body).unwrap(), msgs[..1]);
        // No messages: an empty body (the idle probe).
        assert_eq!(encode_batch(&[], split, &mut body), (0, 0));
        assert!(body.is_empty());
    }

    #[test]
    fn authority_of_peer_urls() {
        assert_eq!(
            url_authority("http://127.0.0.2:2380"),
            Some("127.0.0.2:2380")
        );
        assert_eq!(url_authority("https://h:1/x"), Some("h:1"));
        assert_eq!(url_authority("unix://x"), None);
        assert_eq!(url_authority("http://"), None);
    }
}
