//! The per-connection HTTP/1.x loop: socket bytes ↔ parsed requests ↔ handler ↔ responses.
//!
//! Owns reading into a reused buffer (no more than the current request needs); judging each
//! request by its head before its body is read or `100 Continue` sent ([`Handler::admit`]: a
//! refusal is answered at once and the connection closed, an admitted body gets the handler's
//! size limit); pipelining (complete requests in the buffer are parsed and their handlers
//! started, up to [`MAX_IN_FLIGHT`] at once, but only safe ones (GET, HEAD, OPTIONS) overlap:
//! any other request starts once every earlier one has answered, and a safe one waits for an
//! earlier unsafe one, so each request sees the effects of every earlier request on its
//! connection); bounding the finished output a client leaves unread (no new request while
//! [`MAX_BACKLOG`] bytes wait); writing responses strictly in request order with every ready
//! response batched into one write; `100 Continue`; streamed (long-poll) bodies with prompt
//! client-disconnect detection; idle, header, body and write timeouts; and error answers followed by
//! a lingering close. Knows nothing about what
//! requests mean: the [`Handler`] decides everything about them (no etcd / v2 API knowledge).
//! Must run on a glommio executor when a timeout is set or an error close lingers (it uses
//! glommio timers).

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::timer::Timer;

use super::request::{HttpError, Limits, Progress, Request, RequestHead, RequestParser, Step};
use super::response::{
    encode_chunk, encode_last_chunk, encode_response, error_response, Body, BodyStream, Response,
    ResponseContext,
};

/// Most requests of one connection whose handlers run at once; more pipelined requests
/// wait in the read buffer.
pub const MAX_IN_FLIGHT: usize = 32;

/// Most bytes of finished output a connection holds unwritten (its write buffer plus the
/// bodies of finished responses waiting their turn) and still takes a new request. A client
/// that does not read its answers makes the connection hold at most this plus the answers of
/// the handlers already running (one, when handlers answer at once).
pub const MAX_BACKLOG: usize = 1 << 20;

/// What a handler decides about a request from its head, before the body is read.
pub enum Admit {
    /// Read the body, refusing (413, then close) one larger than this many bytes or than the
    /// connection's [`Limits::max_body_bytes`], whichever is smaller.
    Body(usize),
    /// Hand the body to this sink as it arrives instead of buffering it (limit as for
    /// [`Admit::Body`]; the body must come with a Content-Length, else 411 and close). Once
    /// the whole body went in and the sink closed, the handler gets the request with the
    /// body [`BodySink::finish`] makes. A sink dropped unfinished (client gone, error,
    /// timeout) must clean up after itself.
    Stream(usize, Box<dyn BodySink>),
    /// Answer this at once, without reading the body, and close the connection.
    Refuse(Response),
}

impl std::fmt::Debug for Admit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Admit::Body(n) => f.debug_tuple("Body").field(n).finish(),
            Admit::Stream(n, _) => f.debug_tuple("Stream").field(n).finish(),
            Admit::Refuse(r) => f.debug_tuple("Refuse").field(r).finish(),
        }
    }
}

/// Takes a streamed request body ([`Admit::Stream`]) as it arrives.
pub trait BodySink {
    /// Takes some of `buf` (at least one byte when `Ready(Ok)`), or `Pending` while it cannot
    /// take more now (it wakes the task when it can).
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
    /// The body is complete: make what was written durable.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// The body the handler gets in place of the streamed one.
    fn finish(self: Box<Self>) -> Vec<u8>;
}

/// A streamed body being handed to its sink.
struct Sunk {
    sink: Box<dyn BodySink>,
    head: RequestHead,
    /// Body bytes still to come.
    remaining: usize,
    closed: bool,
}

/// Serves requests. The returned future need not be `Send`; it may borrow `self`.
pub trait Handler {
    /// Judges a request by its head, before its body is read or `100 Continue` is sent. The
    /// default takes any body the connection's [`Limits`] allow.
    fn admit(&self, head: &RequestHead) -> Admit {
        let _ = head;
        Admit::Body(usize::MAX)
    }

    fn handle(&self, req: Request) -> impl Future<Output = Response>;
}

/// Adapts a closure `Fn(Request) -> impl Future<Output = Response>` into a [`Handler`] that
/// admits every request.
pub struct HandlerFn<F>(pub F);

impl<F, Fut> Handler for HandlerFn<F>
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    fn handle(&self, req: Request) -> impl Future<Output = Response> {
        (self.0)(req)
    }
}

const INITIAL_READ_BUF: usize = 8 * 1024;
/// Keep at least this much room for each read.
const MIN_READ: usize = 4 * 1024;
/// Most unparsed input buffered while a body streams to a sink.
const STREAM_READ: usize = 1 << 20;
/// Buffers grown past this are given back once empty.
const SHRINK_ABOVE: usize = 64 * 1024;
/// Stop producing output while this much is still unwritten (slow reader backpressure).
const WRITE_HIGH_WATER: usize = 256 * 1024;
/// After a client's EOF, handlers still running get this long before they are dropped.
const EOF_GRACE: Duration = Duration::from_secs(2);
/// After an error answer: how long to keep draining input so the answer is not lost to a RST.
const LINGER: Duration = Duration::from_millis(500);

/// Rounds of work one wake-up may do before yielding to other tasks.
const LOOP_BUDGET: u32 = 64;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Serves one connection until the client leaves, a close is due, a timeout fires or the
/// socket fails. Returns `Ok` on every orderly end (including client disconnects seen as
/// EOF); socket errors are returned.
pub async fn serve_connection<S, H>(stream: S, handler: &H, limits: &Limits) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let mut conn = Conn::new(
        stream,
        |req| handler.handle(req),
        |head: &RequestHead| handler.admit(head),
        limits,
    );
    poll_fn(|cx| conn.poll(cx)).await
}

/// One response's place in the ordered output queue.
struct Slot<F> {
    /// The running handler, kept in a reusable pinned box (`None` once finished).
    fut: Option<Pin<Box<Option<F>>>>,
    resp: Option<Response>,
    ctx: ResponseContext,
    /// An error answer: after it the connection closes with a linger.
    linger: bool,
    /// Already polled during the current wake-up.
    polled: bool,
    /// The request's method is safe (it may overlap other safe ones).
    safe: bool,
}

/// Output bytes a finished response holds until it is encoded.
fn held_bytes(resp: &Response, ctx: &ResponseContext) -> usize {
    match &resp.body {
        Body::Full(b) if !ctx.head => b.len(),
        _ => 0,
    }
}

/// A glommio timer armed lazily: re-armed only when it would fire too late or already fired.
#[derive(Default)]
struct LazyTimer {
    timer: Option<Timer>,
    armed: Option<Instant>,
}

impl LazyTimer {
    /// Makes sure the task is woken at or before `deadline` (which is after `now`).
    fn arm(&mut self, cx: &mut Context<'_>, now: Instant, deadline: Instant) {
        if let Some(at) = self.armed {
            if at > now && at <= deadline {
                return;
            }
        }
        let dur = deadline.saturating_duration_since(now);
        let timer = match &mut self.timer {
            Some(t) => {
                t.reset(dur);
                t
            }
            None => self.timer.insert(Timer::new(dur)),
        };
        match Pin::new(timer).poll(cx) {
            Poll::Pending => self.armed = Some(deadline),
            Poll::Ready(_) => {
                self.armed = None;
                cx.waker().wake_by_ref();
            }
        }
    }
}

enum Phase {
    Open,
    /// Write side shut; draining input until EOF or the deadline.
    Lingering(Instant),
}

struct Conn<'l, S, F, C, A> {
    io: S,
    start: C,
    admit: A,
    limits: &'l Limits,

    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    /// Do not re-parse until this many unparsed bytes are buffered.
    need: usize,
    /// Parses the request at `rstart`, remembering how far it got.
    parser: RequestParser,
    /// What the last parse said about the incomplete request at `rstart`.
    partial: Progress,
    continue_sent: bool,
    /// No further request will be taken from the input (close requested or error).
    stop_parsing: bool,
    read_eof: bool,

    wbuf: Vec<u8>,
    wpos: usize,
    need_flush: bool,
    /// Since when output has waited with no byte going out (see [`Limits::write_timeout`]).
    write_blocked_since: Option<Instant>,

    slots: VecDeque<Slot<F>>,
    spare: Vec<Pin<Box<Option<F>>>>,
    /// Handlers started and not finished, and how many of them are for unsafe methods.
    running: usize,
    running_unsafe: usize,
    /// Sum of [`held_bytes`] over the finished responses in `slots`.
    finished_bytes: usize,
    streaming: Option<(BodyStream, bool)>,
    /// The request whose body streams to a sink.
    sunk: Option<Sunk>,

    /// Close once everything queued is written.
    close_after: bool,
    linger_after: bool,
    phase: Phase,

    last_read: Instant,
    not_busy_since: Instant,
    was_busy: bool,
    request_started: Option<Instant>,
    /// When the head of the request at `rstart` was admitted (its body is being read).
    body_started: Option<Instant>,
    eof_deadline: Option<Instant>,
    timer: LazyTimer,
}

impl<'l, S, F, C, A> Conn<'l, S, F, C, A>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = Response>,
    C: Fn(Request) -> F,
    A: Fn(&RequestHead) -> Admit,
{
    fn new(io: S, start: C, admit: A, limits: &'l Limits) -> Self {
        let now = Instant::now();
        Conn {
            io,
            start,
            admit,
            limits,
            rbuf: vec![0; INITIAL_READ_BUF],
            rstart: 0,
            rend: 0,
            need: 0,
            parser: RequestParser::default(),
            partial: Progress::default(),
            continue_sent: false,
            stop_parsing: false,
            read_eof: false,
            wbuf: Vec::with_capacity(INITIAL_READ_BUF),
            wpos: 0,
            need_flush: false,
            write_blocked_since: None,
            slots: VecDeque::new(),
            spare: Vec::new(),
            running: 0,
            running_unsafe: 0,
            finished_bytes: 0,
            streaming: None,
            sunk: None,
            close_after: false,
            linger_after: false,
            phase: Phase::Open,
            last_read: now,
            not_busy_since: now,
            was_busy: false,
            request_started: None,
            body_started: None,
            eof_deadline: None,
            timer: LazyTimer::default(),
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let now = Instant::now();
        if let Phase::Lingering(until) = self.phase {
            return self.poll_linger(cx, now, until);
        }
        for slot in &mut self.slots {
            slot.polled = false;
        }
        let mut read_pending = false;
        let mut stream_pending = false;
        let mut budget = LOOP_BUDGET;
        loop {
            let mut progress = false;

            if !read_pending && self.wants_read() {
                match self.poll_read(cx, now) {
                    Poll::Ready(Ok(true)) => progress = true,
                    Poll::Ready(Ok(false)) => {
                        // EOF: the client is gone (or half-closed). A stream has no reader.
                        self.read_eof = true;
                        self.need = 0;
                        if self.streaming.is_some() {
                            return Poll::Ready(Ok(()));
                        }
                        self.eof_deadline = Some(now + EOF_GRACE);
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => read_pending = true,
                }
            }

            if self.sunk.is_some() {
                progress |= self.poll_sink(cx, now);
            }
            progress |= self.parse_requests(cx, now);
            progress |= self.poll_handlers(cx);
            progress |= self.queue_ready_responses();
            // Only when there is room for more: a stream not polled for lack of room is not
            // pending on anything (it registered no waker), and the write that makes room must
            // be followed by a poll of it.
            if !stream_pending
                && self.streaming.is_some()
                && self.wbuf.len() - self.wpos < WRITE_HIGH_WATER
            {
                match self.poll_stream(cx) {
                    Poll::Ready(()) => progress = true,
                    Poll::Pending => stream_pending = true,
                }
            }
            if self.continue_due() {
                self.wbuf.extend_from_slice(CONTINUE);
                self.continue_sent = true;
            }
            match self.poll_write(cx, now) {
                Poll::Ready(Ok(wrote)) => progress |= wrote,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }

            let busy = self.busy();
            if busy {
                self.was_busy = true;
            } else {
                if self.was_busy {
                    self.was_busy = false;
                    self.not_busy_since = now;
                }
                if self.close_after {
                    return self.begin_close(cx, now);
                }
                if self.read_eof && (self.stop_parsing || self.rstart == self.rend) {
                    return Poll::Ready(Ok(()));
                }
            }

            match self.check_timers(cx, now, busy) {
                Some(TimerAction::Close) => return Poll::Ready(Ok(())),
                Some(TimerAction::Progress) => progress = true,
                None => {}
            }

            if !progress {
                return Poll::Pending;
            }
            budget -= 1;
            if budget == 0 {
                // Let other connections run; come back at once.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }

    fn busy(&self) -> bool {
        !self.slots.is_empty()
            || self.streaming.is_some()
            || self.wpos < self.wbuf.len()
            || self.sunk.as_ref().is_some_and(|s| s.remaining == 0)
    }

    fn unparsed(&self) -> usize {
        self.rend - self.rstart
    }

    /// Most unparsed input buffered: enough for the current request, whose body may be as
    /// large as its admitted limit (none before its head is admitted, so a connection that
    /// takes no request now reads no further).
    fn read_cap(&self) -> usize {
        if self.sunk.is_some() {
            return STREAM_READ + MIN_READ;
        }
        self.limits.max_header_bytes + self.parser.body_limit().unwrap_or(0) + MIN_READ
    }

    /// Finished output held unwritten.
    fn backlog(&self) -> usize {
        self.finished_bytes + (self.wbuf.len() - self.wpos)
    }

    /// Whether a request may start now: safe ones overlap only safe ones; any other waits
    /// until every earlier request has answered.
    fn may_start(&self, safe: bool) -> bool {
        if safe {
            self.running_unsafe == 0
        } else {
            self.running == 0
        }
    }

    fn wants_read(&self) -> bool {
        !self.read_eof && self.unparsed() < self.read_cap()
    }

    /// Reads once. `Ok(true)`: bytes arrived; `Ok(false)`: EOF.
    fn poll_read(&mut self, cx: &mut Context<'_>, now: Instant) -> Poll<io::Result<bool>> {
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        }
        if self.rbuf.len() - self.rend < MIN_READ {
            if self.rstart > 0 {
                self.rbuf.copy_within(self.rstart..self.rend, 0);
                self.rend -= self.rstart;
                self.rstart = 0;
            }
            if self.rbuf.len() - self.rend < MIN_READ {
                let want = (self.rbuf.len() * 2).max(self.rend + MIN_READ);
                self.rbuf.resize(want, 0);
            }
        }
        let was_empty = self.rstart == self.rend;
        let n = match Pin::new(&mut self.io).poll_read(cx, &mut self.rbuf[self.rend..]) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(n)) => n,
        };
        if n == 0 {
            return Poll::Ready(Ok(false));
        }
        self.last_read = now;
        if self.stop_parsing {
            // Input after a close or an error is not served: drop it.
            return Poll::Ready(Ok(true));
        }
        if was_empty {
            self.request_started = Some(now);
        }
        self.rend += n;
        Poll::Ready(Ok(true))
    }

    /// Parses the requests buffered and starts their handlers, while the in-flight, backlog
    /// and ordering rules allow; judges each head as soon as it is complete; queues an error
    /// answer for a malformed request.
    fn parse_requests(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut progress = false;
        if self.stop_parsing {
            self.rstart = self.rend;
        }
        while !self.stop_parsing && self.sunk.is_none() {
            let avail = self.unparsed();
            if avail == 0 || avail < self.need {
                break;
            }
            match self.parser.head() {
                // A new request: taken only while few run and little output waits.
                None => {
                    if self.slots.len() >= MAX_IN_FLIGHT || self.backlog() >= MAX_BACKLOG {
                        break;
                    }
                }
                // An admitted request: its body is parsed when it may start.
                Some(head) => {
                    if !self.may_start(head.is_safe()) {
                        break;
                    }
                }
            }
            match self
                .parser
                .parse(&self.rbuf[self.rstart..self.rend], self.limits)
            {
                Ok(Step::Head) => {
                    self.admit_head(now);
                    progress = true;
                }
                Ok(Step::Complete(req, used)) => {
                    self.rstart += used;
                    self.need = 0;
                    self.partial = Progress::default();
                    self.continue_sent = false;
                    self.body_started = None;
                    self.request_started = (self.rstart < self.rend).then_some(now);
                    self.start_request(cx, req);
                    progress = true;
                }
                Ok(Step::Partial(p)) => {
                    if self.read_eof {
                        // Can never complete: the client stopped sending.
                        self.stop_parsing = true;
                        self.rstart = self.rend;
                        progress = true;
                        break;
                    }
                    if avail >= self.read_cap() {
                        // Framing overhead (tiny chunks) made it outgrow the buffer.
                        self.push_error(HttpError::new(413, "request too large"));
                        progress = true;
                        break;
                    }
                    self.partial = p;
                    self.need = p.needed.map_or(avail + 1, |n| n.max(avail + 1));
                    break;
                }
                Err(e) => {
                    self.push_error(e);
                    progress = true;
                    break;
                }
            }
        }
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
            self.request_started = None;
            if self.rbuf.len() > SHRINK_ABOVE {
                self.rbuf = vec![0; INITIAL_READ_BUF];
            }
        }
        progress
    }

    /// Asks the handler about the head just parsed: its body is then read up to the limit
    /// given, or the refusal is answered and the connection closes.
    fn admit_head(&mut self, now: Instant) {
        let Some(head) = self.parser.head() else {
            return;
        };
        let ctx = ResponseContext {
            head: head.is_head(),
            minor_version: head.minor_version,
            keep_alive: false,
        };
        match (self.admit)(head) {
            Admit::Body(limit) => {
                self.parser.admit(limit.min(self.limits.max_body_bytes));
                self.partial = self.parser.progress();
                self.body_started = Some(now);
            }
            Admit::Stream(limit, sink) => {
                let limit = limit.min(self.limits.max_body_bytes);
                match self.parser.take_head() {
                    Some((head, head_len, Some(len), expect_continue)) if len <= limit => {
                        self.rstart += head_len;
                        self.need = 0;
                        self.partial = Progress {
                            head_complete: true,
                            expect_continue,
                            needed: None,
                        };
                        self.body_started = Some(now);
                        self.sunk = Some(Sunk {
                            sink,
                            head,
                            remaining: len,
                            closed: false,
                        });
                    }
                    Some((_, _, Some(_), _)) => {
                        self.push_error(HttpError::new(413, "request body too large"))
                    }
                    _ => self.push_error(HttpError::new(411, "length required")),
                }
            }
            Admit::Refuse(resp) => {
                self.stop_parsing = true;
                self.rstart = self.rend;
                self.push_answer(resp, ctx);
            }
        }
    }

    /// Starts the handler of a complete request and polls it at once, so an answer ready
    /// without waiting counts towards the backlog before the next request is taken.
    fn start_request(&mut self, cx: &mut Context<'_>, req: Request) {
        let ctx = ResponseContext {
            head: req.is_head(),
            minor_version: req.minor_version,
            keep_alive: req.keep_alive,
        };
        if !req.keep_alive {
            self.stop_parsing = true;
        }
        let safe = req.is_safe();
        let fut = (self.start)(req);
        let boxed = match self.spare.pop() {
            Some(mut b) => {
                b.as_mut().set(Some(fut));
                b
            }
            None => Box::pin(Some(fut)),
        };
        let mut slot = Slot {
            fut: Some(boxed),
            resp: None,
            ctx,
            linger: false,
            polled: true,
            safe,
        };
        self.running += 1;
        if !safe {
            self.running_unsafe += 1;
        }
        if let Some(resp) = poll_slot(&mut slot, cx) {
            self.running -= 1;
            if !safe {
                self.running_unsafe -= 1;
            }
            self.finished_bytes += held_bytes(&resp, &slot.ctx);
            slot.resp = Some(resp);
        }
        self.slots.push_back(slot);
    }

    /// Hands buffered body bytes to the sink; once all came and it closed, starts the
    /// request when the ordering rules allow. `true` on progress.
    fn poll_sink(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let Some(s) = &mut self.sunk else {
            return false;
        };
        let mut progress = false;
        while s.remaining > 0 && self.rstart < self.rend {
            let n = s.remaining.min(self.rend - self.rstart);
            match s
                .sink
                .poll_write(cx, &self.rbuf[self.rstart..self.rstart + n])
            {
                Poll::Ready(Ok(k)) if k > 0 => {
                    let k = k.min(n);
                    self.rstart += k;
                    s.remaining -= k;
                    progress = true;
                }
                Poll::Ready(Ok(_)) | Poll::Ready(Err(_)) => {
                    self.sunk = None;
                    self.push_error(HttpError::new(500, "request body not stored"));
                    return true;
                }
                Poll::Pending => break,
            }
        }
        if s.remaining > 0 {
            return progress;
        }
        if !s.closed {
            match s.sink.poll_close(cx) {
                Poll::Ready(Ok(())) => {
                    s.closed = true;
                    progress = true;
                }
                Poll::Ready(Err(_)) => {
                    self.sunk = None;
                    self.push_error(HttpError::new(500, "request body not stored"));
                    return true;
                }
                Poll::Pending => return progress,
            }
        }
        let safe = s.head.is_safe();
        if !self.may_start(safe) || self.stop_parsing {
            return progress;
        }
        let Some(Sunk { sink, head, .. }) = self.sunk.take() else {
            return progress;
        };
        self.partial = Progress::default();
        self.continue_sent = false;
        self.body_started = None;
        self.request_started = (self.rstart < self.rend).then_some(now);
        self.start_request(cx, Request::from_head(head, sink.finish()));
        true
    }

    fn push_error(&mut self, e: HttpError) {
        self.stop_parsing = true;
        self.rstart = self.rend;
        self.push_answer(
            error_response(e.status(), e.detail()),
            ResponseContext::CLOSE,
        );
    }

    /// Queues an answer the connection gives itself, after which it closes with a linger.
    fn push_answer(&mut self, resp: Response, ctx: ResponseContext) {
        self.parser.reset();
        self.sunk = None;
        self.body_started = None;
        self.finished_bytes += held_bytes(&resp, &ctx);
        self.slots.push_back(Slot {
            fut: None,
            resp: Some(resp),
            ctx,
            linger: true,
            polled: true,
            safe: true,
        });
    }

    /// Polls every running handler not polled yet in this wake-up; `true` when one finished.
    fn poll_handlers(&mut self, cx: &mut Context<'_>) -> bool {
        let (mut done, mut done_unsafe, mut held) = (0, 0, 0);
        for slot in &mut self.slots {
            if slot.polled || slot.resp.is_some() {
                continue;
            }
            slot.polled = true;
            if let Some(resp) = poll_slot(slot, cx) {
                done += 1;
                done_unsafe += usize::from(!slot.safe);
                held += held_bytes(&resp, &slot.ctx);
                slot.resp = Some(resp);
            }
        }
        self.running -= done;
        self.running_unsafe -= done_unsafe;
        self.finished_bytes += held;
        done > 0
    }

    /// Moves every finished response at the head of the queue into the write buffer.
    fn queue_ready_responses(&mut self) -> bool {
        let mut progress = false;
        while self.streaming.is_none() && self.wbuf.len() - self.wpos < WRITE_HIGH_WATER {
            let Some(front) = self.slots.front_mut() else {
                break;
            };
            let Some(resp) = front.resp.take() else {
                break;
            };
            let Some(slot) = self.slots.pop_front() else {
                break;
            };
            self.finished_bytes -= held_bytes(&resp, &slot.ctx);
            if let Some(b) = slot.fut {
                self.spare.push(b);
            }
            progress = true;
            let close = if self.read_eof && matches!(resp.body, Body::Stream(_)) {
                // The client has gone: nobody will read the stream, so drop it now (earlier
                // answers are already queued) and close.
                drop(resp);
                true
            } else {
                let enc = encode_response(resp, &slot.ctx, &mut self.wbuf);
                self.streaming = enc.stream;
                enc.close
            };
            if close {
                self.close_after = true;
                self.linger_after |= slot.linger;
                self.stop_parsing = true;
                self.rstart = self.rend;
                // Requests after a closing response are not answered.
                self.slots.clear();
                self.running = 0;
                self.running_unsafe = 0;
                self.finished_bytes = 0;
                break;
            }
        }
        progress
    }

    /// Pulls items from the active stream into the write buffer while the unwritten output is
    /// under the high-water mark. `Ready` when it made progress (items or the end), `Pending`
    /// only when the stream itself has nothing now (its waker is registered).
    fn poll_stream(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut progress = false;
        while self.wbuf.len() - self.wpos < WRITE_HIGH_WATER {
            let Some((stream, chunked)) = &mut self.streaming else {
                break;
            };
            match stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    if *chunked {
                        encode_chunk(&item, &mut self.wbuf);
                    } else {
                        self.wbuf.extend_from_slice(&item);
                    }
                    progress = true;
                }
                Poll::Ready(None) => {
                    if *chunked {
                        encode_last_chunk(&mut self.wbuf);
                    }
                    self.streaming = None;
                    return Poll::Ready(());
                }
                Poll::Pending => break,
            }
        }
        if progress {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn continue_due(&self) -> bool {
        self.partial.expect_continue
            && !self.continue_sent
            && !self.stop_parsing
            && self.slots.is_empty()
            && self.streaming.is_none()
            && (self.unparsed() > 0 || self.sunk.is_some())
    }

    /// Writes what is buffered. `Ok(true)` when bytes went out. Notes when output starts
    /// waiting with nothing going out, for the write timeout.
    fn poll_write(&mut self, cx: &mut Context<'_>, now: Instant) -> Poll<io::Result<bool>> {
        let mut wrote = false;
        while self.wpos < self.wbuf.len() {
            match Pin::new(&mut self.io).poll_write(cx, &self.wbuf[self.wpos..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.wpos += n;
                    wrote = true;
                    self.need_flush = true;
                    self.write_blocked_since = None;
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.write_blocked_since.get_or_insert(now);
                    return Poll::Pending;
                }
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        if self.wbuf.capacity() > WRITE_HIGH_WATER * 4 {
            self.wbuf = Vec::with_capacity(INITIAL_READ_BUF);
        }
        if self.need_flush {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.need_flush = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.write_blocked_since.get_or_insert(now);
                    return Poll::Pending;
                }
            }
        }
        self.write_blocked_since = None;
        Poll::Ready(Ok(wrote))
    }

    fn check_timers(
        &mut self,
        cx: &mut Context<'_>,
        now: Instant,
        busy: bool,
    ) -> Option<TimerAction> {
        let mut next: Option<Instant> = None;
        if let Some(deadline) = self.eof_deadline {
            // Handlers of a departed client get a grace period, then are dropped.
            if now >= deadline {
                return Some(TimerAction::Close);
            }
            next = Some(deadline);
        } else if !busy {
            let limits = self.limits;
            if let (Some(t), Some(started), false, false) = (
                limits.header_timeout,
                self.request_started,
                self.partial.head_complete,
                self.stop_parsing,
            ) {
                let deadline = started.max(self.not_busy_since) + t;
                if now >= deadline {
                    self.push_error(HttpError::timeout());
                    return Some(TimerAction::Progress);
                }
                next = Some(deadline);
            }
            if let (Some(t), Some(started), false) =
                (limits.body_timeout, self.body_started, self.stop_parsing)
            {
                // An admitted body that has not arrived in time: like a slow head.
                let deadline = started.max(self.not_busy_since) + t;
                if now >= deadline {
                    self.push_error(HttpError::body_timeout());
                    return Some(TimerAction::Progress);
                }
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
            }
            if let Some(t) = limits.idle_timeout {
                let deadline = self.last_read.max(self.not_busy_since) + t;
                if now >= deadline {
                    return Some(TimerAction::Close);
                }
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
            }
        }
        if let (Some(t), Some(since)) = (self.limits.write_timeout, self.write_blocked_since) {
            // Output nobody takes, busy or not (a watch or a stream whose reader stopped
            // reading holds its handler and buffers for good otherwise).
            let deadline = since + t;
            if now >= deadline {
                return Some(TimerAction::Close);
            }
            next = Some(next.map_or(deadline, |n| n.min(deadline)));
        }
        if let Some(deadline) = next {
            self.timer.arm(cx, now, deadline);
        }
        None
    }

    /// Everything is written and the connection must close: shut the write side, then
    /// linger after error answers so the client reads them before any reset.
    fn begin_close(&mut self, cx: &mut Context<'_>, now: Instant) -> Poll<io::Result<()>> {
        let _ = Pin::new(&mut self.io).poll_close(cx);
        if self.linger_after && !self.read_eof {
            let until = now + LINGER;
            self.phase = Phase::Lingering(until);
            return self.poll_linger(cx, now, until);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_linger(
        &mut self,
        cx: &mut Context<'_>,
        now: Instant,
        until: Instant,
    ) -> Poll<io::Result<()>> {
        if now >= until {
            return Poll::Ready(Ok(()));
        }
        loop {
            self.rstart = 0;
            self.rend = 0;
            match Pin::new(&mut self.io).poll_read(cx, &mut self.rbuf[..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(_)) => continue,
                Poll::Pending => break,
            }
        }
        self.timer.arm(cx, now, until);
        Poll::Pending
    }
}

enum TimerAction {
    Close,
    Progress,
}

/// Polls the handler of `slot` once; its answer when it finished.
fn poll_slot<F: Future<Output = Response>>(
    slot: &mut Slot<F>,
    cx: &mut Context<'_>,
) -> Option<Response> {
    let boxed = slot.fut.as_mut()?;
    let fut = boxed.as_mut().as_pin_mut()?;
    match fut.poll(cx) {
        Poll::Ready(resp) => {
            boxed.as_mut().set(None);
            Some(resp)
        }
        Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{AsyncReadExt, AsyncWriteExt, Stream};
    use glommio::net::{TcpListener, TcpStream};
    use glommio::timer::sleep;
    use std::cell::{Cell, RefCell};
    use std::net::SocketAddr;
    use std::rc::Rc;
    use std::task::Waker;

    fn run<F: Future<Output = ()>>(f: impl FnOnce() -> F + Send + 'static) {
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(1 << 20)
            .make()
            .expect("executor");
        ex.run(f());
    }

    /// A never-ending watch: one item at once, then nothing; records its drop.
    struct Watch {
        sent: bool,
        _dropped: DropFlag,
    }

    impl Stream for Watch {
        type Item = Vec<u8>;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
            if self.sent {
                Poll::Pending
            } else {
                self.sent = true;
                Poll::Ready(Some(b"watching\n".to_vec()))
            }
        }
    }

    /// Sets its flag when dropped.
    struct DropFlag(Rc<Cell<bool>>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }

    #[derive(Default)]
    struct TestHandler {
        watch_dropped: Rc<Cell<bool>>,
        in_flight: Cell<usize>,
        max_in_flight: Cell<usize>,
        /// "start METHOD PATH" and "end METHOD PATH", in the order they happened.
        events: RefCell<Vec<String>>,
    }

    impl Handler for TestHandler {
        /// `/refuse…` is refused with 412; `/small…` takes at most 10 body bytes.
        fn admit(&self, head: &RequestHead) -> Admit {
            if head.path.starts_with("/refuse") {
                Admit::Refuse(Response::text(412, "refused\n"))
            } else if head.path.starts_with("/small") {
                Admit::Body(10)
            } else if head.path.starts_with("/sink") {
                Admit::Stream(16, Box::new(TestSink::default()))
            } else {
                Admit::Body(usize::MAX)
            }
        }

        async fn handle(&self, req: Request) -> Response {
            let name = format!("{} {}", req.method, req.path);
            self.events.borrow_mut().push(format!("start {name}"));
            self.in_flight.set(self.in_flight.get() + 1);
            self.max_in_flight
                .set(self.max_in_flight.get().max(self.in_flight.get()));
            let resp = if let Some(ms) = req.path.strip_prefix("/sleep/") {
                let ms = ms.parse().unwrap_or(0);
                sleep(Duration::from_millis(ms)).await;
                Response::text(200, req.path.clone())
            } else if req.path == "/stream" {
                let items = futures_lite::stream::unfold(0, |i| async move {
                    if i == 3 {
                        return None;
                    }
                    sleep(Duration::from_millis(20)).await;
                    Some((format!("chunk{i}\n").into_bytes(), i + 1))
                });
                Response::stream(200, items).with_header("Content-Type", "application/json")
            } else if req.path == "/flood" {
                // Endless 64 KiB chunks, as a watch on a busy key space; records its drop.
                let dropped = DropFlag(self.watch_dropped.clone());
                let items = futures_lite::stream::unfold(dropped, |dropped| async move {
                    Some((vec![b'x'; 64 * 1024], dropped))
                });
                Response::stream(200, items)
            } else if req.path == "/watch" {
                Response::stream(
                    200,
                    Watch {
                        sent: false,
                        _dropped: DropFlag(self.watch_dropped.clone()),
                    },
                )
            } else {
                let mut body = format!("{} {}?{} ", req.method, req.path, req.query).into_bytes();
                body.extend_from_slice(&req.body);
                Response::text(200, body)
            };
            self.in_flight.set(self.in_flight.get() - 1);
            self.events.borrow_mut().push(format!("end {name}"));
            resp
        }
    }

    /// Starts a server on an ephemeral port serving each connection on its own task.
    /// Takes at most 3 bytes a write, and is busy every other call.
    #[derive(Default)]
    struct TestSink {
        got: Vec<u8>,
        busy: bool,
    }

    impl BodySink for TestSink {
        fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.busy = !self.busy;
            if self.busy {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = buf.len().min(3);
            self.got.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_close(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn finish(self: Box<Self>) -> Vec<u8> {
            [&b"sunk:"[..], &self.got].concat()
        }
    }

    #[test]
    fn streamed_bodies_go_to_the_sink() {
        run(|| async {
            let addr = start_server(Rc::default(), Limits::default());
            let mut c = Client::connect(addr).await;
            c.send(
                format!(
                    "{}POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world{}",
                    get("/sleep/20"),
                    get("/after")
                )
                .as_bytes(),
            )
            .await;
            assert_eq!(c.response().await.body, b"/sleep/20");
            assert_eq!(c.response().await.body, b"POST /sink? sunk:hello world");
            assert_eq!(c.response().await.body, b"GET /after? ");
            // Over the limit: 413 before the body; chunked: 411.
            for (req, want) in [
                (
                    "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 17\r\n\r\n",
                    413,
                ),
                (
                    "POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
                    411,
                ),
            ] {
                let mut c = Client::connect(addr).await;
                c.send(req.as_bytes()).await;
                assert_eq!(c.response().await.status, want, "{req}");
                assert!(c.read_eof().await);
            }
        });
    }

    fn start_server(handler: Rc<TestHandler>, limits: Limits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        glommio::spawn_local(async move {
            while let Ok(stream) = listener.accept().await {
                let handler = handler.clone();
                glommio::spawn_local(async move {
                    let _ = serve_connection(stream, &*handler, &limits).await;
                })
                .detach();
            }
        })
        .detach();
        addr
    }

    async fn with_timeout<T>(ms: u64, f: impl Future<Output = T>) -> T {
        futures_lite::future::or(async { Some(f.await) }, async {
            sleep(Duration::from_millis(ms)).await;
            None
        })
        .await
        .expect("timed out")
    }

    /// A client that parses responses out of what it reads.
    struct Client {
        stream: TcpStream,
        buf: Vec<u8>,
    }

    #[derive(Debug)]
    struct Resp {
        status: u16,
        head: String,
        body: Vec<u8>,
    }

    impl Client {
        async fn connect(addr: SocketAddr) -> Client {
            Client {
                stream: TcpStream::connect(addr).await.expect("connect"),
                buf: Vec::new(),
            }
        }

        async fn send(&mut self, bytes: &[u8]) {
            self.stream.write_all(bytes).await.expect("write");
        }

        /// Reads once; returns how many bytes arrived (0 = EOF).
        async fn read_some(&mut self) -> usize {
            let mut tmp = vec![0u8; 256 * 1024];
            let n = with_timeout(3000, self.stream.read(&mut tmp))
                .await
                .unwrap_or(0);
            self.buf.extend_from_slice(&tmp[..n]);
            n
        }

        async fn read_eof(&mut self) -> bool {
            self.read_some().await == 0
        }

        fn try_parse(&mut self) -> Option<Resp> {
            let head_end = self.buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
            let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
            let status = head.get(9..12)?.parse().ok()?;
            let lower = head.to_ascii_lowercase();
            let mut pos = head_end;
            let mut body = Vec::new();
            if lower.contains("transfer-encoding: chunked") {
                loop {
                    let line_end = self.buf[pos..].windows(2).position(|w| w == b"\r\n")? + pos;
                    let size = usize::from_str_radix(
                        std::str::from_utf8(&self.buf[pos..line_end]).ok()?,
                        16,
                    )
                    .ok()?;
                    pos = line_end + 2;
                    if self.buf.len() < pos + size + 2 {
                        return None;
                    }
                    body.extend_from_slice(&self.buf[pos..pos + size]);
                    pos += size + 2;
                    if size == 0 {
                        break;
                    }
                }
            } else if let Some(i) = lower.find("content-length: ") {
                let len: usize = lower[i + 16..].split("\r\n").next()?.parse().ok()?;
                if (100..200).contains(&status) || head.starts_with("HEAD") {
                    // no body
                } else {
                    if self.buf.len() < head_end + len {
                        return None;
                    }
                    body = self.buf[head_end..head_end + len].to_vec();
                    pos = head_end + len;
                }
            }
            self.buf.drain(..pos);
            Some(Resp { status, head, body })
        }

        async fn response(&mut self) -> Resp {
            loop {
                if let Some(r) = self.try_parse() {
                    return r;
                }
                assert!(self.read_some().await > 0, "EOF before a full response");
            }
        }
    }

    fn get(path: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
    }

    #[test]
    fn pipelined_requests_answered_in_order_in_one_read() {
        run(|| async {
            let addr = start_server(Rc::default(), Limits::default());
            let mut c = Client::connect(addr).await;
            let reqs = format!(
                "{}PUT /b?x=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc{}",
                get("/a"),
                get("/c")
            );
            c.send(reqs.as_bytes()).await;
            c.read_some().await;
            let bodies: Vec<_> = (0..3)
                .map(|_| c.try_parse().expect("all three in the first read").body)
                .collect();
            assert_eq!(bodies, [&b"GET /a? "[..], b"PUT /b?x=1 abc", b"GET /c? "]);
            // The connection stays usable.
            c.send(get("/d").as_bytes()).await;
            assert_eq!(c.response().await.body, b"GET /d? ");
        });
    }

    #[test]
    fn slow_handlers_run_concurrently_with_ordered_output() {
        run(|| async {
            let handler: Rc<TestHandler> = Rc::default();
            let addr = start_server(handler.clone(), Limits::default());
            let mut c = Client::connect(addr).await;
            let reqs = format!("{}{}{}", get("/sleep/300"), get("/fast"), get("/sleep/250"));
            let t0 = Instant::now();
            c.send(reqs.as_bytes()).await;
            let mut bodies = Vec::new();
            for _ in 0..3 {
                bodies.push(c.response().await.body);
            }
            assert_eq!(bodies, [&b"/sleep/300"[..], b"GET /fast? ", b"/sleep/250"]);
            assert!(
                t0.elapsed() < Duration::from_millis(520),
                "{:?}",
                t0.elapsed()
            );
            assert!(handler.max_in_flight.get() >= 2);
        });
    }

    #[test]
    fn stream_response_delivers_chunks_then_pipelined_requests() {
        run(|| async {
            let addr = start_server(Rc::default(), Limits::default());
            let mut c = Client::connect(addr).await;
            c.send(format!("{}{}", get("/stream"), get("/after")).as_bytes())
                .await;
            // Headers are flushed before the first item exists.
            c.read_some().await;
            let head = String::from_utf8_lossy(&c.buf).into_owned();
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            assert!(head.contains("Transfer-Encoding: chunked\r\n"));
            assert!(!head.contains("chunk0"), "{head}");
            let r = c.response().await;
            assert_eq!(r.body, b"chunk0\nchunk1\nchunk2\n");
            assert_eq!(c.response().await.body, b"GET /after? ");
            // HEAD of a stream: head only.
            c.send(b"HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n").await;
            c.send(get("/x").as_bytes()).await;
            let mut seen = Vec::new();
            while !String::from_utf8_lossy(&c.buf).contains("GET /x?") {
                seen.push(c.read_some().await);
            }
            let text = String::from_utf8_lossy(&c.buf).into_owned();
            assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
            assert!(!text.contains("chunk0"));
        });
    }

    #[test]
    fn client_disconnect_drops_stream_promptly() {
        run(|| async {
            let handler: Rc<TestHandler> = Rc::default();
            let addr = start_server(handler.clone(), Limits::default());
            let mut c = Client::connect(addr).await;
            c.send(get("/watch").as_bytes()).await;
            while !String::from_utf8_lossy(&c.buf).contains("watching") {
                assert!(c.read_some().await > 0);
            }
            assert!(!handler.watch_dropped.get());
            drop(c);
            let t0 = Instant::now();
            while !handler.watch_dropped.get() {
                assert!(
                    t0.elapsed() < Duration::from_millis(200),
                    "stream not dropped"
                );
                sleep(Duration::from_millis(2)).await;
            }
        });
    }

    #[test]
    fn garbage_gets_400_and_close_while_others_keep_working() {
        run(|| async {
            let addr = start_server(Rc::default(), Limits::default());
            let mut good = Client::connect(addr).await;
            let mut bad = Client::connect(addr).await;
            bad.send(b"\x16\x03\x01garbage garbage\r\n\r\nmore").await;
            let r = bad.response().await;
            assert_eq!(r.status, 400);
            assert!(r.head.contains("Connection: close\r\n"));
            assert!(bad.read_eof().await);
            good.send(get("/ok").as_bytes()).await;
            assert_eq!(good.response().await.body, b"GET /ok? ");
            // A valid request before the garbage is still answered first.
            let mut mixed = Client::connect(addr).await;
            mixed
                .send(format!("{}BAD\r\n\r\n", get("/first")).as_bytes())
                .await;
            assert_eq!(mixed.response().await.status, 200);
            assert_eq!(mixed.response().await.status, 400);
            assert!(mixed.read_eof().await);
            // Oversized body: 413 before the body is sent.
            let mut big = Client::connect(addr).await;
            big.send(b"PUT /k HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n")
                .await;
            assert_eq!(big.response().await.status, 413);
            assert!(big.read_eof().await);
        });
    }

    #[test]
    fn idle_and_header_timeouts() {
        run(|| async {
            let limits = Limits {
                idle_timeout: Some(Duration::from_millis(150)),
                header_timeout: Some(Duration::from_millis(100)),
                ..Limits::default()
            };
            let addr = start_server(Rc::default(), limits);
            // Idle after a request: closed quietly.
            let mut c = Client::connect(addr).await;
            c.send(get("/a").as_bytes()).await;
            assert_eq!(c.response().await.status, 200);
            let t0 = Instant::now();
            assert!(c.read_eof().await);
            let waited = t0.elapsed();
            assert!(waited >= Duration::from_millis(100) && waited < Duration::from_millis(1000));
            assert!(c.buf.is_empty());
            // Idle with no request at all.
            let mut c = Client::connect(addr).await;
            assert!(c.read_eof().await);
            // A head that never completes: 408.
            let mut c = Client::connect(addr).await;
            c.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n").await;
            let t0 = Instant::now();
            let r = c.response().await;
            assert_eq!(r.status, 408);
            assert!(t0.elapsed() >= Duration::from_millis(80));
            assert!(c.read_eof().await);
        });
    }

    #[test]
    fn a_streamed_body_that_outruns_the_socket_keeps_flowing() {
        // A stream that always has more: the output buffer fills, a write drains it, and the
        // stream must be polled again in the same wake-up (no waker of the stream is pending:
        // it was skipped for lack of room). It stalled for good after the first such write.
        run(|| async {
            let limits = Limits {
                write_timeout: None,
                ..Limits::default()
            };
            let handler = Rc::new(TestHandler::default());
            let addr = start_server(handler.clone(), limits);
            let mut c = Client::connect(addr).await;
            c.send(get("/flood").as_bytes()).await;
            let mut buf = vec![0u8; 1 << 20];
            let mut got = 0usize;
            with_timeout(30_000, async {
                while got < 64 << 20 {
                    let n = c.stream.read(&mut buf).await.unwrap();
                    assert!(n > 0, "the stream ended");
                    got += n;
                }
            })
            .await;
        });
    }

    #[test]
    fn output_a_client_stops_taking_times_out_and_slow_readers_do_not() {
        run(|| async {
            let limits = Limits {
                write_timeout: Some(Duration::from_secs(1)),
                ..Limits::default()
            };
            let handler = Rc::new(TestHandler::default());
            let addr = start_server(handler.clone(), limits);
            // Takes what has arrived every 100 ms: output keeps going out, so it keeps going.
            let mut slow = Client::connect(addr).await;
            slow.send(get("/flood").as_bytes()).await;
            let mut got = 0;
            let mut buf = vec![0u8; 8 << 20];
            for _ in 0..25 {
                sleep(Duration::from_millis(100)).await;
                got += slow.stream.read(&mut buf).await.unwrap();
            }
            assert!(got > 0);
            assert!(
                !handler.watch_dropped.get(),
                "a slow reader lost its stream"
            );
            drop(slow);
            sleep(Duration::from_millis(100)).await;
            handler.watch_dropped.set(false);
            // Never reads: once the socket buffers are full nothing goes out, and after the
            // write timeout the connection closes and the stream is dropped.
            let mut stalled = Client::connect(addr).await;
            stalled.send(get("/flood").as_bytes()).await;
            let mut waited = Duration::ZERO;
            while !handler.watch_dropped.get() && waited < Duration::from_secs(20) {
                sleep(Duration::from_millis(50)).await;
                waited += Duration::from_millis(50);
            }
            assert!(
                handler.watch_dropped.get(),
                "a stalled reader kept its stream"
            );
        });
    }

    #[test]
    fn expect_continue_then_body() {
        run(|| async {
            let addr = start_server(Rc::default(), Limits::default());
            let mut c = Client::connect(addr).await;
            c.send(b"PUT /k HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n")
                .await;
            let r = c.response().await;
            assert_eq!(r.status, 100);
            assert_eq!(r.head, "HTTP/1.1 100 Continue\r\n\r\n");
            c.send(&vec![b'v'; 5000]).await;
            let r = c.response().await;
            assert_eq!(r.status, 200);
            assert_eq!(r.body.len(), "PUT /k? ".len() + 5000);
            // Body already sent with the head: no 100.
            let mut req = b"PUT /k HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok".to_vec();
            req.extend_from_slice(get("/n").as_bytes());
            c.send(&req).await;
            assert_eq!(c.response().await.body, b"PUT /k? ok");
            assert_eq!(c.response().await.body, b"GET /n? ");
        });
    }

    #[test]
    fn close_rules_and_large_bodies() {
        run(|| async {
            let addr = start_server(Rc::default(), Limits::default());
            let mut c = Client::connect(addr).await;
            c.send(
                format!(
                    "GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n{}",
                    get("/ignored")
                )
                .as_bytes(),
            )
            .await;
            let r = c.response().await;
            assert!(r.head.contains("Connection: close\r\n"));
            assert!(c.read_eof().await);
            assert!(c.buf.is_empty(), "nothing after a close");

            let mut c = Client::connect(addr).await;
            c.send(b"GET /old HTTP/1.0\r\n\r\n").await;
            let r = c.response().await;
            assert!(r.head.starts_with("HTTP/1.0 200 OK\r\n"));
            assert!(c.read_eof().await);

            // A 1 MiB body, chunked, over a keep-alive connection.
            let mut c = Client::connect(addr).await;
            let mut req =
                b"PUT /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for _ in 0..64 {
                req.extend_from_slice(b"4000\r\n");
                req.extend_from_slice(&[b'x'; 0x4000]);
                req.extend_from_slice(b"\r\n");
            }
            req.extend_from_slice(b"0\r\n\r\n");
            c.send(&req).await;
            let r = c.response().await;
            assert_eq!(r.body.len(), "PUT /big? ".len() + (1 << 20));
            c.send(get("/after").as_bytes()).await;
            assert_eq!(c.response().await.body, b"GET /after? ");
        });
    }

    #[test]
    fn client_half_close_still_gets_answers() {
        run(|| async {
            let addr = start_server(Rc::default(), Limits::default());
            let mut c = Client::connect(addr).await;
            c.send(format!("{}{}", get("/sleep/50"), get("/b")).as_bytes())
                .await;
            c.stream
                .shutdown(std::net::Shutdown::Write)
                .await
                .expect("shutdown");
            assert_eq!(c.response().await.body, b"/sleep/50");
            assert_eq!(c.response().await.body, b"GET /b? ");
            assert!(c.read_eof().await);
            // A stream due after the EOF is dropped; the answers before it still arrive.
            let handler: Rc<TestHandler> = Rc::default();
            let addr = start_server(handler.clone(), Limits::default());
            let mut c = Client::connect(addr).await;
            c.send(format!("{}{}", get("/sleep/30"), get("/watch")).as_bytes())
                .await;
            c.stream
                .shutdown(std::net::Shutdown::Write)
                .await
                .expect("shutdown");
            assert_eq!(c.response().await.body, b"/sleep/30");
            assert!(c.read_eof().await);
            assert!(c.buf.is_empty(), "{:?}", String::from_utf8_lossy(&c.buf));
            assert!(handler.watch_dropped.get());
        });
    }

    #[test]
    fn many_pipelined_requests_beyond_the_in_flight_bound() {
        run(|| async {
            let handler: Rc<TestHandler> = Rc::default();
            let addr = start_server(handler.clone(), Limits::default());
            let mut c = Client::connect(addr).await;
            let reqs: String = (0..200)
                .map(|i| get(&format!("/sleep/{}", i % 3)))
                .collect();
            c.send(reqs.as_bytes()).await;
            for i in 0..200 {
                let body = c.response().await.body;
                assert_eq!(body, format!("/sleep/{}", i % 3).into_bytes());
            }
            assert!(handler.max_in_flight.get() <= MAX_IN_FLIGHT);
            assert!(handler.max_in_flight.get() > 1);
        });
    }

    #[test]
    fn random_input_never_hangs_a_connection() {
        run(|| async {
            let limits = Limits {
                max_header_bytes: 256,
                max_body_bytes: 64,
                ..Limits::default()
            };
            let addr = start_server(Rc::default(), limits);
            let seeds: &[&[u8]] = &[
                b"GET /a?b=c HTTP/1.1\r\nHost: t\r\n\r\n",
                b"PUT /k HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
                b"POST /k HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n",
                b"GET /stream HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\r\n",
            ];
            let mut state: u64 = 0x2545_f491_4f6c_dd1d;
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            for _ in 0..60 {
                let mut input = Vec::new();
                for _ in 0..(next() % 4 + 1) {
                    input.extend_from_slice(seeds[(next() % seeds.len() as u64) as usize]);
                }
                for _ in 0..(next() % 5) {
                    let at = (next() % input.len() as u64) as usize;
                    input[at] = next() as u8;
                }
                let mut c = Client::connect(addr).await;
                c.send(&input).await;
                c.stream
                    .shutdown(std::net::Shutdown::Write)
                    .await
                    .expect("shutdown");
                // Every connection ends (answered or not) well before the read timeout.
                while c.read_some().await > 0 {}
            }
            // The server still serves.
            let mut c = Client::connect(addr).await;
            c.send(get("/fine").as_bytes()).await;
            assert_eq!(c.response().await.body, b"GET /fine? ");
        });
    }

    #[test]
    fn heads_are_judged_before_bodies_are_read() {
        run(|| async {
            let handler: Rc<TestHandler> = Rc::default();
            let limits = Limits {
                max_body_bytes: 1 << 31,
                ..Limits::default()
            };
            let addr = start_server(handler.clone(), limits);
            // Refused: answered at once, the 1 GiB body never sent, then closed.
            let mut c = Client::connect(addr).await;
            c.send(b"POST /refuse HTTP/1.1\r\nHost: t\r\nContent-Length: 1073741824\r\n\r\n")
                .await;
            let r = c.response().await;
            assert_eq!((r.status, r.body.as_slice()), (412, &b"refused\n"[..]));
            assert!(r.head.contains("Connection: close\r\n"), "{}", r.head);
            assert!(c.read_eof().await);
            // Expecting 100-continue: the refusal instead; chunked the same.
            let mut c = Client::connect(addr).await;
            c.send(b"PUT /refuse HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await;
            assert_eq!(c.response().await.status, 412);
            assert!(c.read_eof().await);
            assert!(c.buf.is_empty(), "{:?}", String::from_utf8_lossy(&c.buf));
            // After earlier pipelined requests: they are answered first.
            let mut c = Client::connect(addr).await;
            c.send(
                format!(
                    "{}POST /refuse HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999\r\n\r\n",
                    get("/sleep/20")
                )
                .as_bytes(),
            )
            .await;
            assert_eq!(c.response().await.body, b"/sleep/20");
            assert_eq!(c.response().await.status, 412);
            assert!(c.read_eof().await);
            // The handler's limit, below the connection's: 413 before the body is sent.
            let mut c = Client::connect(addr).await;
            c.send(b"PUT /small HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n")
                .await;
            assert_eq!(c.response().await.status, 413);
            assert!(c.read_eof().await);
            // Within it: served.
            let mut c = Client::connect(addr).await;
            c.send(b"PUT /small HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
                .await;
            assert_eq!(c.response().await.body, b"PUT /small? hello");
            // No refused request reached the handler.
            let events = handler.events.borrow();
            assert!(events.iter().all(|e| !e.contains("/refuse")), "{events:?}");
        });
    }

    #[test]
    fn a_stalled_body_times_out_with_408() {
        run(|| async {
            let limits = Limits {
                body_timeout: Some(Duration::from_millis(150)),
                ..Limits::default()
            };
            let addr = start_server(Rc::default(), limits);
            for stalled in [
                &b"PUT /k HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"[..],
                b"PUT /k HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                b"PUT /k HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n",
            ] {
                let mut c = Client::connect(addr).await;
                let t0 = Instant::now();
                c.send(stalled).await;
                let r = c.response().await;
                assert_eq!(r.status, 408, "{}", String::from_utf8_lossy(stalled));
                assert!(r.body.ends_with(b"request body timeout\n"), "{:?}", r.body);
                assert!(t0.elapsed() >= Duration::from_millis(100));
                assert!(c.read_eof().await);
            }
        });
    }

    #[test]
    fn requests_after_an_unsafe_one_wait_for_it() {
        run(|| async {
            let handler: Rc<TestHandler> = Rc::default();
            let addr = start_server(handler.clone(), Limits::default());
            let mut c = Client::connect(addr).await;
            let put = "PUT /sleep/30 HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nv";
            let reqs = format!(
                "{}{put}{}{}DELETE /sleep/10 HTTP/1.1\r\nHost: t\r\n\r\n",
                get("/sleep/60"),
                get("/sleep/40"),
                get("/sleep/41"),
            );
            c.send(reqs.as_bytes()).await;
            let mut bodies = Vec::new();
            for _ in 0..5 {
                bodies.push(String::from_utf8(c.response().await.body).unwrap());
            }
            assert_eq!(
                bodies,
                [
                    "/sleep/60",
                    "/sleep/30",
                    "/sleep/40",
                    "/sleep/41",
                    "/sleep/10"
                ]
            );
            let events = handler.events.borrow().clone();
            // The PUT starts after the GET before it ends, the GETs after it end; the two
            // GETs overlap; the DELETE waits for both.
            assert_eq!(
                events[..4],
                [
                    "start GET /sleep/60",
                    "end GET /sleep/60",
                    "start PUT /sleep/30",
                    "end PUT /sleep/30"
                ],
                "{events:?}"
            );
            let mut mid = events[4..6].to_vec();
            mid.sort();
            assert_eq!(
                mid,
                ["start GET /sleep/40", "start GET /sleep/41"],
                "{events:?}"
            );
            let mut ends = events[6..8].to_vec();
            ends.sort();
            assert_eq!(
                ends,
                ["end GET /sleep/40", "end GET /sleep/41"],
                "{events:?}"
            );
            assert_eq!(
                events[8..],
                ["start DELETE /sleep/10", "end DELETE /sleep/10"],
                "{events:?}"
            );
        });
    }

    /// A client that sent `input` at once and then neither sends nor closes, and that takes
    /// (reads) only as many bytes as `room` allows.
    struct StuckClient {
        input: Vec<u8>,
        pos: usize,
        room: Rc<Cell<usize>>,
        written: Rc<Cell<usize>>,
    }

    impl AsyncRead for StuckClient {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let n = (self.input.len() - self.pos).min(buf.len());
            if n == 0 {
                return Poll::Pending;
            }
            buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
            self.pos += n;
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for StuckClient {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = self.room.get().min(buf.len());
            if n == 0 {
                return Poll::Pending;
            }
            self.room.set(self.room.get() - n);
            self.written.set(self.written.get() + n);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn output_a_client_does_not_read_is_bounded() {
        run(|| async {
            let requests = 60;
            for body in [2 << 20, 100 << 10] {
                let room = Rc::new(Cell::new(0));
                let written = Rc::new(Cell::new(0));
                let io = StuckClient {
                    input: get("/big").repeat(requests).into_bytes(),
                    pos: 0,
                    room: room.clone(),
                    written: written.clone(),
                };
                let started = Cell::new(0);
                let limits = Limits::default();
                let mut conn = Conn::new(
                    io,
                    |_: Request| {
                        started.set(started.get() + 1);
                        async move { Response::full(200, vec![b'x'; body]) }
                    },
                    |_: &RequestHead| Admit::Body(usize::MAX),
                    &limits,
                );
                let mut cx = Context::from_waker(Waker::noop());
                for _ in 0..100 {
                    assert!(conn.poll(&mut cx).is_pending());
                }
                // Nothing was read: at most the bound plus one answer is held, and no more
                // requests were started than that takes.
                let held = conn.backlog();
                assert!(held <= MAX_BACKLOG + body, "{body}: {held} bytes held");
                assert!(
                    started.get() * body <= MAX_BACKLOG + 2 * body,
                    "{body}: {} started",
                    started.get()
                );
                // The client reads after all: every request is answered.
                room.set(usize::MAX);
                let mut rounds = 0;
                while started.get() < requests || conn.busy() {
                    assert!(conn.poll(&mut cx).is_pending());
                    rounds += 1;
                    assert!(rounds < 100_000, "{body}: stuck at {}", started.get());
                }
                assert!(written.get() > requests * body);
                assert_eq!(conn.backlog(), 0);
            }
        });
    }
}
