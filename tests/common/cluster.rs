//! Real multi-member tern clusters on loopback: each member on its own 127.x.y.z address
//! (unique per test, so tests of one binary can run in parallel), with its stderr kept in a log
//! file in its directory, and helpers to kill, pause, restart, and ask who leads.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{free_port_on, temp_dir, Client, Resp};

/// Heartbeat and election timeout every test cluster runs with (ms): quick elections.
pub const HEARTBEAT_MS: u64 = 50;
pub const ELECTION_MS: u64 = 500;

/// One member: where it lives and its process, if running.
pub struct Node {
    pub name: String,
    pub ip: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub dir: PathBuf,
    pub child: Option<Child>,
    pub tls: NodeTls,
}

/// A member's TLS, if any: `https://` client URLs (reached with `client`), `https://` peer
/// URLs, and the flags (certificate files) its command line gets.
#[derive(Clone, Default)]
pub struct NodeTls {
    pub client: Option<std::sync::Arc<rustls::ClientConfig>>,
    pub peer: bool,
    pub args: Vec<String>,
}

impl Node {
    pub fn client_url(&self) -> String {
        let scheme = if self.tls.client.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}:{}", self.ip, self.client_port)
    }
    pub fn peer_url(&self) -> String {
        let scheme = if self.tls.peer { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.ip, self.peer_port)
    }
    pub fn addr(&self) -> SocketAddr {
        format!("{}:{}", self.ip, self.client_port).parse().unwrap()
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("stderr.log")
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
    /// Waits up to `timeout` for the process to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        super::wait_exit(self.child.as_mut()?, timeout)
    }
    /// Sends `sig` to the member's process, directly and checked. (It ran a `kill` child
    /// process and ignored its failure; one CI run then saw a "paused" majority acknowledge a
    /// write, which a pause that did not happen would explain.) For SIGSTOP, waits until the
    /// kernel shows every thread of the process stopped.
    fn signal(&self, sig: libc::c_int) {
        let Some(c) = &self.child else { return };
        let pid = c.id() as libc::pid_t;
        // SAFETY: kill(2) on a child process this harness owns.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {sig}): {}",
            std::io::Error::last_os_error()
        );
        if sig != libc::SIGSTOP {
            return;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
                .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
                .unwrap_or_default();
            let stopped = tasks.iter().all(|t| {
                let stat = std::fs::read_to_string(t.join("stat")).unwrap_or_default();
                // The state follows the command name in parentheses.
                stat.rsplit_once(") ")
                    .is_none_or(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
            });
            if stopped {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "process {pid} did not stop within 10 s of SIGSTOP"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A unique loopback network per cluster: 127.<a>.<b>.<member>.
fn next_network() -> (u8, u8) {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    ((10 + pid % 200) as u8, (n % 250) as u8 + 1)
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub token: String,
    net: (u8, u8),
    root: PathBuf,
    pub extra: Vec<String>,
    /// Environment variables every member starts with.
    pub env: Vec<(String, String)>,
    /// The reference etcd 3.4 to run instead of tern (same flags, v2 API on, no `--shards`).
    etcd: Option<PathBuf>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::thread::panicking() {
            for n in &self.nodes {
                eprintln!(
                    "----- {} ({}) log -----\n{}",
                    n.name,
                    n.ip,
                    tail(&n.log(), 40)
                );
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

impl Cluster {
    /// Addresses and directories for `n` members; nothing started.
    pub fn plan(n: usize, extra: &[&str]) -> Cluster {
        let net = next_network();
        let root = temp_dir("cluster");
        let mut c = Cluster {
            nodes: Vec::new(),
            token: format!("tok-{}-{}-{}", std::process::id(), net.0, net.1),
            net,
            root,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            etcd: None,
        };
        for _ in 0..n {
            c.plan_node();
        }
        c
    }

    /// Plans one more member (not started); its index.
    pub fn plan_node(&mut self) -> usize {
        let i = self.nodes.len();
        let ip = format!("127.{}.{}.{}", self.net.0, self.net.1, i + 1);
        let dir = self.root.join(format!("m{}", i + 1));
        std::fs::create_dir_all(&dir).unwrap();
        self.nodes.push(Node {
            name: format!("m{}", i + 1),
            client_port: free_port_on(&ip),
            peer_port: free_port_on(&ip),
            ip,
            dir,
            child: None,
            tls: NodeTls::default(),
        });
        i
    }

    /// Starts a new cluster of `n` members and waits until every one serves clients.
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        Cluster::plan(n, extra).start_planned()
    }

    /// A cluster of `n` members of Debian's etcd 3.4 (`None` when it is not installed).
    pub fn start_etcd(n: usize, extra: &[&str]) -> Option<Cluster> {
        let mut c = Cluster::plan(n, extra);
        c.etcd = Some(super::etcd_binary()?);
        Some(c.start_planned())
    }

    /// Addresses and directories for `n` members of Debian's etcd 3.4, nothing started (`None`
    /// when it is not installed).
    pub fn plan_etcd(n: usize, extra: &[&str]) -> Option<Cluster> {
        let mut c = Cluster::plan(n, extra);
        c.etcd = Some(super::etcd_binary()?);
        Some(c)
    }

    fn start_planned(mut self) -> Cluster {
        let c = &mut self;
        let n = c.nodes.len();
        let ic = c.initial_cluster(&(0..n).collect::<Vec<_>>());
        for i in 0..n {
            c.spawn(i, &ic, "new", &[]);
        }
        for i in 0..n {
            c.wait_serving(i, Duration::from_secs(30));
        }
        self
    }

    /// `name=peer,…` for the given members.
    pub fn initial_cluster(&self, members: &[usize]) -> String {
        members
            .iter()
            .map(|&i| format!("{}={}", self.nodes[i].name, self.nodes[i].peer_url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The command line of member `i` (without starting it); an empty `initial_cluster` leaves
    /// `--initial-cluster` out.
    pub fn command(&self, i: usize, initial_cluster: &str, state: &str, extra: &[&str]) -> Command {
        let n = &self.nodes[i];
        let mut cmd = match &self.etcd {
            Some(etcd) => {
                let mut cmd = Command::new(etcd);
                cmd.arg("--enable-v2");
                cmd
            }
            None => {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_tern"));
                cmd.args(["--shards", "2"]);
                cmd
            }
        };
        cmd.arg("--name")
            .arg(&n.name)
            .arg("--data-dir")
            .arg(n.dir.join("data"))
            .arg("--listen-client-urls")
            .arg(n.client_url())
            .arg("--advertise-client-urls")
            .arg(n.client_url())
            .arg("--listen-peer-urls")
            .arg(n.peer_url())
            .arg("--initial-advertise-peer-urls")
            .arg(n.peer_url())
            .args(
                // Empty: the member learns its cluster another way (`--discovery`).
                Some(initial_cluster)
                    .filter(|ic| !ic.is_empty())
                    .map(|ic| ["--initial-cluster", ic])
                    .into_iter()
                    .flatten(),
            )
            .arg("--initial-cluster-state")
            .arg(state)
            .arg("--initial-cluster-token")
            .arg(&self.token)
            .arg("--heartbeat-interval")
            .arg(HEARTBEAT_MS.to_string())
            .arg("--election-timeout")
            .arg(ELECTION_MS.to_string())
            .args(&self.extra)
            .args(&n.tls.args)
            .args(extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null());
        cmd
    }

    /// Starts member `i` (appending its stderr to its log).
    pub fn spawn(&mut self, i: usize, initial_cluster: &str, state: &str, extra: &[&str]) {
        let cmd = self.command(i, initial_cluster, state, extra);
        self.spawn_command(i, cmd);
    }

    /// Starts member `i` with a command from [`Cluster::command`] the test adjusted.
    pub fn spawn_command(&mut self, i: usize, mut cmd: Command) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.nodes[i].log_path())
            .unwrap();
        cmd.stderr(Stdio::from(log));
        self.nodes[i].child = Some(cmd.spawn().expect("start tern"));
    }

    /// Restarts a stopped member on its data dir (the `--initial-*` flags are ignored then).
    pub fn restart(&mut self, i: usize) {
        let ic = self.initial_cluster(&[i]);
        self.spawn(i, &ic, "existing", &[]);
        self.wait_serving(i, Duration::from_secs(30));
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    pub fn pause(&self, i: usize) {
        self.nodes[i].signal(libc::SIGSTOP);
    }
    pub fn resume(&self, i: usize) {
        self.nodes[i].signal(libc::SIGCONT);
    }

    pub fn client(&self, i: usize) -> Client {
        self.try_client(i).expect("connect")
    }

    pub fn try_client(&self, i: usize) -> Option<Client> {
        let n = &self.nodes[i];
        match &n.tls.client {
            Some(config) => Client::try_connect_tls(n.addr(), config.clone()).ok(),
            None => Client::try_connect(n.addr()).ok(),
        }
    }

    /// Waits until member `i` accepts client connections and answers `/v2/stats/self`.
    pub fn wait_serving(&mut self, i: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.nodes[i].running() {
                panic!(
                    "member {} exited while starting:\n{}",
                    self.nodes[i].name,
                    self.nodes[i].log()
                );
            }
            if let Some(mut c) = self.try_client(i) {
                c.set_read_timeout(Duration::from_secs(2));
                if c.try_request("GET", "/v2/stats/self", &[], b"")
                    .is_ok_and(|r| r.status == 200)
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "member {} did not start serving:\n{}",
                self.nodes[i].name,
                self.nodes[i].log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `/v2/stats/self` of member `i`, if it answers.
    pub fn self_stats(&self, i: usize) -> Option<serde_json::Value> {
        let mut c = self.try_client(i)?;
        c.set_read_timeout(Duration::from_secs(2));
        let r = c.try_request("GET", "/v2/stats/self", &[], b"").ok()?;
        (r.status == 200).then(|| r.json())
    }

    /// The index of the member that says it leads, among `among`, once exactly one does.
    pub fn wait_leader(&self, among: &[usize], timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let leaders: Vec<usize> = among
                .iter()
                .copied()
                .filter(|&i| {
                    self.self_stats(i)
                        .is_some_and(|s| s["state"] == "StateLeader")
                })
                .collect();
            if leaders.len() == 1 {
                return leaders[0];
            }
            assert!(
                Instant::now() < deadline,
                "no single leader among {among:?} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The member ID (hex) of member `i`, from its own `/v2/stats/self`.
    pub fn member_id(&self, i: usize) -> String {
        self.self_stats(i).expect("member answers")["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Polls member `i` with a local GET of `key` until it returns `value`.
    pub fn wait_value(&self, i: usize, key: &str, value: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(mut c) = self.try_client(i) {
                c.set_read_timeout(Duration::from_secs(2));
                if let Ok(r) = c.try_request("GET", &format!("/v2/keys{key}"), &[], b"") {
                    if r.status == 200 && r.json()["node"]["value"] == value {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "member {} never showed {key}={value}",
                self.nodes[i].name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether this process may partition members with iptables (root, and iptables works).
pub fn iptables_usable() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    root && Command::new("iptables")
        .args(["-L", "INPUT", "-n"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Drops traffic between `ip` and each of `others`, both ways; `add` false removes the rules.
/// Clients (connecting from 127.0.0.1) still reach every member.
pub fn partition(ip: &str, others: &[String], add: bool) {
    for other in others {
        for (s, d) in [(ip, other.as_str()), (other.as_str(), ip)] {
            let _ = Command::new("iptables")
                .args([
                    if add { "-I" } else { "-D" },
                    "INPUT",
                    "-s",
                    s,
                    "-d",
                    d,
                    "-j",
                    "DROP",
                ])
                .status();
        }
    }
}

/// `POST /v2/members` announcing a member at `peer_url`.
pub fn add_member(c: &mut Client, peer_url: &str) -> Resp {
    json_request(
        c,
        "POST",
        "/v2/members",
        &format!("{{\"peerURLs\":[\"{peer_url}\"]}}"),
    )
}

/// A JSON request (the members API wants `Content-Type: application/json`).
pub fn json_request(c: &mut Client, method: &str, path: &str, body: &str) -> Resp {
    c.try_request(
        method,
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}
