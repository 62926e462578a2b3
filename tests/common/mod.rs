//! Test harness: start real `tern` (and, when installed, reference `etcd`) processes on
//! loopback, and talk HTTP/1.1 to them with a small blocking client.
#![allow(dead_code)]

pub mod certs;
pub mod cluster;

use std::collections::BTreeMap;
use std::io::{Read, Write};

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tern::http::decode::{Event, ResponseDecoder};

/// A free TCP port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    free_port_on("127.0.0.1")
}

/// A free TCP port on `ip`, never one this test process handed out before: the tests of one
/// binary run in parallel, and two of them given the same just-released port would start
/// servers on one address.
pub fn free_port_on(ip: &str) -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind(format!("{ip}:0"))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Whether `cmd` is on the PATH (tests that need it skip with a printed reason otherwise).
pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Waits up to `timeout` for `child` to exit; its exit code (`None`: still running, or killed
/// by a signal).
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fresh empty directory under the target dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tern-test-{}-{}-{}",
        tag,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A server process that is killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    /// Whether dropping the server removes `dir` (false when a test restarts on it).
    pub owns_dir: bool,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }
}

/// Starts tern with `shards` executors on a free port and waits until it answers.
pub fn start_tern(shards: usize, extra: &[&str]) -> Server {
    let mut s = start_tern_on(&temp_dir("tern"), free_port(), free_port(), shards, extra);
    s.owns_dir = true;
    s
}

/// Starts tern on the given data dir and ports (restart tests reuse them); keeps the dir.
pub fn start_tern_on(
    dir: &std::path::Path,
    port: u16,
    peer_port: u16,
    shards: usize,
    extra: &[&str],
) -> Server {
    start_tern_with_env(dir, port, peer_port, shards, extra, &[])
}

/// [`start_tern_on`] with extra environment variables for the process.
pub fn start_tern_with_env(
    dir: &std::path::Path,
    port: u16,
    peer_port: u16,
    shards: usize,
    extra: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> Server {
    let dir = dir.to_path_buf();
    let client_url = format!("http://127.0.0.1:{port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tern"));
    cmd.arg("--name")
        .arg("t1")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--listen-client-urls")
        .arg(&client_url)
        .arg("--advertise-client-urls")
        .arg(&client_url)
        .arg("--listen-peer-urls")
        .arg(&peer_url)
        .arg("--initial-advertise-peer-urls")
        .arg(&peer_url)
        .arg("--initial-cluster")
        .arg(format!("t1={peer_url}"))
        .arg("--shards")
        .arg(shards.to_string())
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let child = cmd.spawn().expect("start tern");
    let server = Server {
        child,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        dir,
        owns_dir: false,
    };
    wait_ready(&server, "/health");
    server
}

/// Whether Debian's etcd is installed; prints why a test skips when it is not.
pub fn etcd_binary() -> Option<PathBuf> {
    for p in ["/usr/bin/etcd", "/usr/local/bin/etcd"] {
        if std::path::Path::new(p).exists() {
            return Some(PathBuf::from(p));
        }
    }
    None
}

/// Starts the reference etcd 3.4 with the v2 API on a free port.
pub fn start_etcd(extra: &[&str]) -> Option<Server> {
    let bin = etcd_binary()?;
    let port = free_port();
    let peer_port = free_port();
    let dir = temp_dir("etcd");
    let client_url = format!("http://127.0.0.1:{port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let child = Command::new(bin)
        .arg("--enable-v2")
        .arg("--name")
        .arg("t1")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--listen-client-urls")
        .arg(&client_url)
        .arg("--advertise-client-urls")
        .arg(&client_url)
        .arg("--listen-peer-urls")
        .arg(&peer_url)
        .arg("--initial-advertise-peer-urls")
        .arg(&peer_url)
        .arg("--initial-cluster")
        .arg(format!("t1={peer_url}"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = Server {
        child,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        dir,
        owns_dir: true,
    };
    wait_ready(&server, "/v2/keys/");
    Some(server)
}

pub fn wait_ready(server: &Server, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut c) = Client::try_connect(server.addr) {
            if let Ok(r) = c.try_request("GET", path, &[], b"") {
                if r.status == 200 {
                    return;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server on {} did not become ready", server.addr);
}

/// An HTTP response as a test sees it.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    /// Header names lowercased; the last value wins.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A client connection: plain TCP, or TLS over it.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &t.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(t) => t.flush(),
        }
    }
}

/// A keep-alive HTTP/1.1 client over one connection (plain or TLS). Responses are read with
/// tern's own decoder (`tern::http::decode`), the one every tern client uses.
pub struct Client {
    stream: Stream,
    /// Bytes read and not yet decoded.
    buf: Vec<u8>,
    decoder: ResponseDecoder,
    addr: SocketAddr,
}

/// What the decoder produced, owned.
enum Decoded {
    Head(tern::http::decode::ResponseHead),
    Data(Vec<u8>),
    End,
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::try_connect(addr).expect("connect")
    }

    pub fn try_connect(addr: SocketAddr) -> std::io::Result<Client> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_nodelay(true)?;
        Ok(Client {
            stream: Stream::Plain(s),
            buf: Vec::new(),
            decoder: ResponseDecoder::new(false),
            addr,
        })
    }

    /// Connects with TLS and completes the handshake (its failure is the error).
    pub fn try_connect_tls(
        addr: SocketAddr,
        config: std::sync::Arc<rustls::ClientConfig>,
    ) -> std::io::Result<Client> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_nodelay(true)?;
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
        let mut tls = rustls::StreamOwned::new(conn, s);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        // TLS 1.3: a refused client certificate shows only on the first read; a request
        // answered proves the server took it.
        Ok(Client {
            stream: Stream::Tls(Box::new(tls)),
            buf: Vec::new(),
            decoder: ResponseDecoder::new(false),
            addr,
        })
    }

    /// The server's certificate chain (TLS connections only).
    pub fn peer_certificates(&self) -> Vec<Vec<u8>> {
        match &self.stream {
            Stream::Tls(t) => t
                .conn
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.to_vec()).collect())
                .unwrap_or_default(),
            Stream::Plain(_) => Vec::new(),
        }
    }

    pub fn set_read_timeout(&self, d: Duration) {
        self.stream.tcp().set_read_timeout(Some(d)).unwrap();
    }

    /// Sends a request; `form` pairs become an urlencoded body (PUT/POST) or are ignored.
    pub fn request(&mut self, method: &str, path: &str, form: &[(&str, &str)]) -> Resp {
        let body = encode_form(form);
        let headers: &[(&str, &str)] = if form.is_empty() {
            &[]
        } else {
            &[("Content-Type", "application/x-www-form-urlencoded")]
        };
        self.try_request(method, path, headers, body.as_bytes())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn get(&mut self, path: &str) -> Resp {
        self.request("GET", path, &[])
    }
    pub fn put(&mut self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.request("PUT", path, form)
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let w = &mut self.stream;
        w.write_all(bytes).unwrap();
        w.flush().unwrap();
    }

    pub fn try_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Resp> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || matches!(method, "PUT" | "POST") {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        let w = &mut self.stream;
        w.write_all(&bytes)?;
        w.flush()?;
        self.read_response(method == "HEAD")
    }

    /// The decoder's next event, reading from the connection as it needs.
    fn next_event(&mut self) -> std::io::Result<Decoded> {
        loop {
            let (used, event) = self.decoder.decode(&self.buf).map_err(invalid)?;
            let event = event.map(|e| match e {
                Event::Head(h) => Decoded::Head(h),
                Event::Data(d) => Decoded::Data(d.to_vec()),
                Event::End => Decoded::End,
            });
            self.buf.drain(..used);
            if let Some(event) = event {
                return Ok(event);
            }
            if used > 0 {
                continue;
            }
            let mut tmp = [0u8; 16 * 1024];
            let n = self.stream.read(&mut tmp)?;
            if n == 0 {
                if self.decoder.in_head() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "connection closed",
                    ));
                }
                self.decoder.finish().map_err(invalid)?;
                return Ok(Decoded::End);
            }
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }

    /// Reads one response (headers, then a Content-Length, chunked or until-close body).
    pub fn read_response(&mut self, head_only: bool) -> std::io::Result<Resp> {
        self.decoder = ResponseDecoder::new(head_only);
        let (status, headers) = self.head()?;
        let mut body = Vec::new();
        loop {
            match self.next_event()? {
                Decoded::Data(d) => body.extend_from_slice(&d),
                Decoded::End => break,
                Decoded::Head(_) => return Err(invalid("a head inside a body")),
            }
        }
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    /// Reads a response's head (header names lower-cased); its body follows with
    /// [`Client::read_chunk`].
    pub fn read_head(&mut self) -> std::io::Result<(u16, BTreeMap<String, String>)> {
        self.decoder = ResponseDecoder::new(false);
        self.head()
    }

    fn head(&mut self) -> std::io::Result<(u16, BTreeMap<String, String>)> {
        match self.next_event()? {
            Decoded::Head(h) => Ok((
                h.status,
                h.headers
                    .into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect(),
            )),
            _ => Err(invalid("a body before its head")),
        }
    }

    /// One chunk of a chunked body (a watch event), `None` at the terminating chunk.
    pub fn read_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut chunk = Vec::new();
        loop {
            match self.next_event()? {
                Decoded::Data(d) => {
                    chunk.extend_from_slice(&d);
                    if !self.decoder.in_chunk_data() {
                        return Ok(Some(chunk));
                    }
                }
                Decoded::End => return Ok(None),
                Decoded::Head(_) => return Err(invalid("a head inside a body")),
            }
        }
    }
}

pub fn encode_form(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&urlencode(k));
        out.push('=');
        out.push_str(&urlencode(v));
    }
    out
}

pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
