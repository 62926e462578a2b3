//! Receiving a snapshot on the peer port without holding it in memory: the body of
//! `POST /raft/snapshot` is `[u32 LE length][protobuf raft Message with empty snapshot data]`
//! followed by the snapshot data. [`SnapshotSink`] keeps the small message and writes the data
//! as it arrives to `<snap dir>/<n>.incoming` (writes and fsync on glommio's blocking thread
//! pool, at most [`WRITE_CHUNK`] bytes buffered and one write in flight), so a connection
//! holds a few MiB whatever the snapshot's size. The raft node reads the file when it takes
//! the message in and then removes it; a sink dropped before its body completed removes its
//! file at once, and leftovers of a crash are removed at startup ([`crate::snap::load_newest`]).

use std::cell::Cell;
use std::fs::File;
use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use protobuf::Message as _;
use raft::eraftpb::Message;

use crate::http::BodySink;

/// Bytes gathered before a write goes out.
pub const WRITE_CHUNK: usize = 1 << 20;
/// Largest header message (a snapshot message without its data is tiny).
const MAX_HEADER: usize = 1 << 20;
/// File name suffix of a snapshot being received.
pub const INCOMING_SUFFIX: &str = ".incoming";

thread_local! {
    static NEXT: Cell<u64> = const { Cell::new(0) };
}

/// Encodes the `/raft/snapshot` body of a snapshot message: the message without its data, then
/// the data.
pub fn encode_snapshot_body(msg: &Message) -> Vec<u8> {
    let mut bare = msg.clone();
    bare.mut_snapshot().data = Default::default();
    let data = &msg.get_snapshot().data;
    let mut body = Vec::with_capacity(data.len() + 256);
    super::encode_frame(&bare, &mut body);
    body.extend_from_slice(data);
    body
}

type WriteDone = (File, Vec<u8>, io::Result<()>);

/// Streams a snapshot body to a file (see the module doc).
pub struct SnapshotSink {
    dir: PathBuf,
    path: PathBuf,
    /// The length-prefixed header message, while it is incomplete.
    header: Vec<u8>,
    file: Option<File>,
    buf: Vec<u8>,
    /// The buffer of the last finished write, for the next one.
    spare: Vec<u8>,
    in_flight: Option<Pin<Box<dyn Future<Output = WriteDone>>>>,
    synced: bool,
    /// Handed over by [`BodySink::finish`]: the file is no longer this sink's to remove.
    handed_over: bool,
}

impl SnapshotSink {
    pub fn new(dir: &Path) -> SnapshotSink {
        let n = NEXT.with(|c| {
            let n = c.get();
            c.set(n + 1);
            n
        });
        let name = format!("{:x}-{n}{INCOMING_SUFFIX}", std::process::id());
        SnapshotSink {
            dir: dir.to_path_buf(),
            path: dir.join(name),
            header: Vec::new(),
            file: None,
            buf: Vec::new(),
            spare: Vec::new(),
            in_flight: None,
            synced: false,
            handed_over: false,
        }
    }

    /// Waits for the write in flight, if any; `Ready` once none is.
    fn poll_in_flight(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(fut) = &mut self.in_flight else {
            return Poll::Ready(Ok(()));
        };
        let (file, mut buf, result) = match fut.as_mut().poll(cx) {
            Poll::Ready(done) => done,
            Poll::Pending => return Poll::Pending,
        };
        self.in_flight = None;
        buf.clear();
        self.file = Some(file);
        self.spare = buf;
        Poll::Ready(result)
    }

    /// Starts writing the buffer (and fsyncing when `sync`) on a blocking thread.
    fn start_write(&mut self, sync: bool) -> io::Result<()> {
        let mut file = match self.file.take() {
            Some(f) => f,
            None => {
                std::fs::create_dir_all(&self.dir)?;
                File::create(&self.path)?
            }
        };
        let buf = std::mem::replace(&mut self.buf, std::mem::take(&mut self.spare));
        let fut = glommio::executor().spawn_blocking(move || {
            let mut result = file.write_all(&buf);
            if sync && result.is_ok() {
                result = file.sync_all();
            }
            (file, buf, result)
        });
        self.in_flight = Some(Box::pin(fut));
        Ok(())
    }

    /// The header message's length, once its 4-byte prefix has arrived.
    fn header_len(&self) -> Option<usize> {
        let prefix: [u8; 4] = self.header.get(..4)?.try_into().ok()?;
        Some(u32::from_le_bytes(prefix) as usize)
    }

    /// Whether the whole header message has arrived.
    fn header_done(&self) -> bool {
        self.header_len()
            .is_some_and(|len| self.header.len() == 4 + len)
    }

    /// Takes header bytes from `buf`; how many.
    fn take_header(&mut self, buf: &[u8]) -> io::Result<usize> {
        let want = match self.header_len() {
            None => 4 - self.header.len(),
            Some(len) if len > MAX_HEADER => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "snapshot header too large",
                ))
            }
            Some(len) => 4 + len - self.header.len(),
        };
        let n = want.min(buf.len());
        self.header.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl BodySink for SnapshotSink {
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if !self.header_done() {
            return Poll::Ready(self.take_header(buf));
        }
        loop {
            if let Poll::Ready(Err(e)) = self.poll_in_flight(cx) {
                return Poll::Ready(Err(e));
            }
            if self.buf.len() < WRITE_CHUNK {
                // Gather while the previous write goes on.
                let n = (WRITE_CHUNK - self.buf.len()).min(buf.len());
                if self.buf.capacity() < WRITE_CHUNK {
                    self.buf.reserve_exact(WRITE_CHUNK - self.buf.len());
                }
                self.buf.extend_from_slice(&buf[..n]);
                return Poll::Ready(Ok(n));
            }
            if self.in_flight.is_some() {
                return Poll::Pending;
            }
            if let Err(e) = self.start_write(false) {
                return Poll::Ready(Err(e));
            }
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.poll_in_flight(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            if self.synced {
                return Poll::Ready(Ok(()));
            }
            if !self.header_done() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "snapshot body ends inside its header",
                )));
            }
            if let Err(e) = self.start_write(true) {
                return Poll::Ready(Err(e));
            }
            self.synced = true;
        }
    }

    /// The header frame, then the path of the file holding the data.
    fn finish(mut self: Box<Self>) -> Vec<u8> {
        self.handed_over = true;
        let mut body = std::mem::take(&mut self.header);
        body.extend_from_slice(self.path.as_os_str().as_encoded_bytes());
        body
    }
}

impl Drop for SnapshotSink {
    fn drop(&mut self) {
        if !self.handed_over {
            // A write still in flight goes to the unlinked file.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Splits a body made by [`SnapshotSink::finish`] into the message and the data file.
pub fn decode_received(body: &[u8]) -> Result<(Message, PathBuf), String> {
    if body.len() < 4 {
        return Err("truncated snapshot header".into());
    }
    let len = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
    let Some(frame) = body.get(4..4 + len) else {
        return Err("truncated snapshot header".into());
    };
    let msg = Message::parse_from_bytes(frame).map_err(|e| e.to_string())?;
    let path = std::str::from_utf8(&body[4 + len..]).map_err(|e| e.to_string())?;
    Ok((msg, PathBuf::from(path)))
}

/// Reads the data a [`SnapshotSink`] received into `msg`'s snapshot and removes the file
/// (also when reading fails). Runs on a blocking thread.
pub async fn load_received(mut msg: Message, path: PathBuf) -> Result<Message, String> {
    let data = glommio::executor()
        .spawn_blocking(move || {
            let data = std::fs::read(&path);
            let _ = std::fs::remove_file(&path);
            data.map_err(|e| format!("reading {}: {e}", path.display()))
        })
        .await?;
    msg.mut_snapshot().data = data.into();
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    fn run<F: Future<Output = ()>>(f: impl FnOnce() -> F + Send + 'static) {
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .make()
            .expect("executor");
        ex.run(f());
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tern-incoming-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    async fn feed(sink: &mut SnapshotSink, mut body: &[u8], piece: usize) {
        while !body.is_empty() {
            let n = piece.min(body.len());
            let took = poll_fn(|cx| sink.poll_write(cx, &body[..n]))
                .await
                .expect("write");
            assert!(took > 0 && took <= n);
            body = &body[took..];
        }
    }

    #[test]
    fn a_snapshot_goes_through_a_file_intact() {
        run(|| async {
            let dir = temp_dir("intact");
            let mut msg = Message::default();
            msg.set_msg_type(raft::eraftpb::MessageType::MsgSnapshot);
            msg.to = 2;
            msg.mut_snapshot().mut_metadata().index = 42;
            let data: Vec<u8> = (0..(5 * WRITE_CHUNK + 12345))
                .map(|i| (i % 251) as u8)
                .collect();
            msg.mut_snapshot().data = data.clone().into();
            let body = encode_snapshot_body(&msg);
            assert!(body.len() < data.len() + 64);
            let mut sink = Box::new(SnapshotSink::new(&dir));
            feed(&mut sink, &body, 100_003).await;
            poll_fn(|cx| sink.poll_close(cx)).await.expect("close");
            let (bare, path) = decode_received(&sink.finish()).expect("decode");
            assert!(path.starts_with(&dir));
            assert!(bare.get_snapshot().data.is_empty());
            let back = load_received(bare, path.clone()).await.expect("load");
            assert_eq!(back, msg);
            assert!(!path.exists(), "loading removes the file");
            let _ = std::fs::remove_dir_all(&dir);
        });
    }

    #[test]
    fn an_unfinished_sink_removes_its_file() {
        run(|| async {
            let dir = temp_dir("unfinished");
            let mut sink = SnapshotSink::new(&dir);
            let mut body = 0u32.to_le_bytes().to_vec();
            body.extend(std::iter::repeat_n(1u8, 3 * WRITE_CHUNK));
            feed(&mut sink, &body, WRITE_CHUNK).await;
            let path = sink.path.clone();
            assert!(path.exists());
            drop(sink);
            assert!(!path.exists());
            // A header that claims too much is refused.
            let mut sink = SnapshotSink::new(&dir);
            let huge = (MAX_HEADER as u32 + 1).to_le_bytes();
            let r = poll_fn(|cx| sink.poll_write(cx, &huge)).await;
            assert_eq!(r.expect("length taken"), 4);
            let r = poll_fn(|cx| sink.poll_write(cx, &[0])).await;
            assert!(r.is_err());
            let _ = std::fs::remove_dir_all(&dir);
        });
    }
}
