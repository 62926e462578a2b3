//! What a plain server costs per request when it does nothing but answer.
//!
//! One thread, one epoll set, non-blocking sockets, one `read` and one `write` per request:
//! every PUT is answered `201` and remembered, every GET is answered `200` with the last PUT's
//! value, both in an etcd-shaped JSON body the size of etcd's answer to a GET (its answer to a
//! PUT over an existing key also carries the previous node). The CPU such a server uses per
//! request is mostly kernel time (loopback TCP, wake-ups, the two system calls): its kernel part
//! is roughly what a plain epoll server cannot avoid on this machine, so `perf/per-request.sh`
//! runs it beside tern and etcd to show how much of their cost per request is their own. It is
//! not a strict lower bound: a server that spins before it sleeps trades wake-ups for user time.
//!
//! `ternbench --responder ADDR` runs it until killed. It is a measuring instrument, not a
//! server: no keys, no timeouts, no limits beyond its read buffer, and it trusts its client
//! (ternbench). Knows nothing of tern.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Largest request (head and body) a connection may have buffered.
const MAX_REQUEST: usize = 64 << 10;
/// Room made for each `read` (a ternbench request is well under it).
const READ_ROOM: usize = 4 << 10;
const EVENTS: usize = 256;

/// A bound responder; [`Responder::run`] serves until the process ends.
pub struct Responder {
    listener: TcpListener,
    epoll: OwnedFd,
}

struct Connection {
    fd: OwnedFd,
    input: Vec<u8>,
}

impl Responder {
    /// Binds `addr` (port 0 picks one; see [`Responder::local_addr`]).
    pub fn bind(addr: SocketAddr) -> io::Result<Responder> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        // SAFETY: epoll_create1 has no memory arguments; its result is checked.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        watch(epoll.as_raw_fd(), listener.as_raw_fd(), u64::MAX)?;
        Ok(Responder { listener, epoll })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves every connection until an error of the epoll set itself.
    pub fn run(self) -> io::Result<()> {
        let mut conns: Vec<Option<Connection>> = Vec::new();
        let mut value = b"0".to_vec();
        let mut out = Vec::new();
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        loop {
            // SAFETY: `events` holds EVENTS entries for the kernel to fill.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    EVENTS as i32,
                    -1,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in &events[..n as usize] {
                let token = ev.u64;
                if token == u64::MAX {
                    self.accept_all(&mut conns)?;
                    continue;
                }
                let slot = token as usize;
                let keep = match conns[slot].as_mut() {
                    Some(conn) => conn.serve(&mut value, &mut out),
                    None => true,
                };
                if !keep {
                    conns[slot] = None; // closing the descriptor leaves the epoll set too
                }
            }
        }
    }

    fn accept_all(&self, conns: &mut Vec<Option<Connection>>) -> io::Result<()> {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(true)?;
                    stream.set_nodelay(true)?;
                    let fd = OwnedFd::from(stream);
                    let slot = match conns.iter().position(Option::is_none) {
                        Some(free) => free,
                        None => {
                            conns.push(None);
                            conns.len() - 1
                        }
                    };
                    watch(self.epoll.as_raw_fd(), fd.as_raw_fd(), slot as u64)?;
                    conns[slot] = Some(Connection {
                        fd,
                        input: Vec::with_capacity(READ_ROOM),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                // Out of descriptors or memory: the connection waits in the backlog for the
                // next turn.
                Err(e) if e.raw_os_error().is_some() => {
                    eprintln!("ternbench --responder: accept: {e}");
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Connection {
    /// Reads what is there and answers every complete request; false when the connection is
    /// done (closed, broken or sent something that is not a request).
    fn serve(&mut self, value: &mut Vec<u8>, out: &mut Vec<u8>) -> bool {
        let start = self.input.len();
        if start >= MAX_REQUEST {
            return false;
        }
        // Read into spare capacity: nothing is cleared or copied per request.
        self.input.reserve(READ_ROOM);
        let room = (self.input.capacity() - start).min(MAX_REQUEST - start);
        let n = loop {
            // SAFETY: the kernel writes at most `room` bytes into the vector's spare capacity.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    self.input.as_mut_ptr().add(start).cast(),
                    room,
                )
            };
            if n >= 0 {
                break n as usize;
            }
            match io::Error::last_os_error().kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return true,
                _ => return false,
            }
        };
        if n == 0 {
            return false;
        }
        // SAFETY: the read initialised `n` bytes after `start`.
        unsafe { self.input.set_len(start + n) };
        out.clear();
        let mut used = 0;
        while let Some(len) = answer(&self.input[used..], value, out) {
            if len == 0 {
                return false;
            }
            used += len;
        }
        self.input.drain(..used);
        let mut sent = 0;
        while sent < out.len() {
            // SAFETY: writes from initialised memory of `out`.
            let w = unsafe {
                libc::write(
                    self.fd.as_raw_fd(),
                    out[sent..].as_ptr().cast(),
                    out.len() - sent,
                )
            };
            if w <= 0 {
                // A client that stops reading its answers is not what this measures.
                return false;
            }
            sent += w as usize;
        }
        true
    }
}

/// Appends the answer to the first request in `input`: `Some(bytes it took)`, `None` when it
/// is not complete yet, `Some(0)` when it is not a request.
fn answer(input: &[u8], value: &mut Vec<u8>, out: &mut Vec<u8>) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(input) {
        Ok(httparse::Status::Complete(head)) => head,
        Ok(httparse::Status::Partial) => return None,
        Err(_) => return Some(0),
    };
    let body_len = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        })
        .unwrap_or(0);
    if input.len() < head + body_len {
        return None;
    }
    let body = &input[head..head + body_len];
    let put = req.method == Some("PUT");
    if put {
        if let Some(v) = body.strip_prefix(b"value=") {
            value.clear();
            value.extend_from_slice(v);
        }
    }
    let (status, action) = if put {
        ("201 Created", "set")
    } else {
        ("200 OK", "get")
    };
    let key = req.path.unwrap_or("/").trim_start_matches("/v2/keys");
    let json_len =
        r#"{"action":"","node":{"key":"","value":"","modifiedIndex":7,"createdIndex":7}}"#.len()
            + 1
            + action.len()
            + key.len()
            + value.len();
    // Formatted in place: no allocation per answer.
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nX-Etcd-Cluster-Id: \
         cdf818194e3a8c32\r\nX-Etcd-Index: 7\r\nX-Raft-Index: 8\r\nX-Raft-Term: 2\r\n\
         Date: Fri, 04 Dec 2026 20:00:00 GMT\r\nContent-Length: {json_len}\r\n\r\n\
         {{\"action\":\"{action}\",\"node\":{{\"key\":\"{key}\",\"value\":\""
    );
    out.extend_from_slice(value);
    out.extend_from_slice(b"\",\"modifiedIndex\":7,\"createdIndex\":7}}\n");
    Some(head + body_len)
}

fn watch(epoll: RawFd, fd: RawFd, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: `ev` lives across the call; the descriptors are open.
    if unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    /// The first whole answer in `pending` (reading more as needed), removed from it; checks
    /// that its Content-Length ends it at the JSON's last byte.
    fn read_answer(s: &mut TcpStream, pending: &mut Vec<u8>) -> String {
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(pending).into_owned();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let len: usize = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .unwrap()
                    .parse()
                    .unwrap();
                let end = head_end + 4 + len;
                if pending.len() >= end {
                    let answer = String::from_utf8(pending.drain(..end).collect()).unwrap();
                    assert!(answer.ends_with("}}\n"), "{answer}");
                    return answer;
                }
            }
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed after {text:?}");
            pending.extend_from_slice(&buf[..n]);
        }
    }

    /// A connection to a responder serving on a thread of its own.
    fn connect_to_a_responder() -> TcpStream {
        let r = Responder::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = r.local_addr().unwrap();
        std::thread::spawn(move || r.run());
        TcpStream::connect(addr).unwrap()
    }

    #[test]
    fn answers_a_put_then_serves_its_value_with_a_truthful_length() {
        let mut s = connect_to_a_responder();
        // The body arrives in a second segment: the answer waits for it.
        s.write_all(b"PUT /v2/keys/k HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nval")
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        s.write_all(b"ue=abc").unwrap();
        let mut pending = Vec::new();
        let put = read_answer(&mut s, &mut pending);
        assert!(put.starts_with("HTTP/1.1 201 Created\r\n"), "{put}");
        let body = "{\"action\":\"set\",\"node\":{\"key\":\"/k\",\"value\":\"abc\",\
                    \"modifiedIndex\":7,\"createdIndex\":7}}\n";
        assert!(put.ends_with(body), "{put}");
        // Two pipelined GETs get two answers.
        s.write_all(b"GET /v2/keys/k HTTP/1.1\r\nHost: x\r\n\r\nGET /v2/keys/k HTTP/1.1\r\n\r\n")
            .unwrap();
        for _ in 0..2 {
            let get = read_answer(&mut s, &mut pending);
            assert!(get.starts_with("HTTP/1.1 200 OK\r\n"), "{get}");
            assert!(get.contains(r#""value":"abc""#), "{get}");
        }
        assert!(pending.is_empty());
    }

    #[test]
    fn closes_a_connection_that_sends_no_request() {
        let mut s = connect_to_a_responder();
        s.write_all(b"\x00\x01 not http\r\n\r\n").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(s.read(&mut buf).unwrap(), 0);
    }
}
