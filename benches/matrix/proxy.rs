//! The matrix's proxy section: GET and PUT of 64 B from 64 kept-alive clients through a proxy
//! (`--proxy on`) in front of a 1-member cluster, tern's proxy before tern, etcd 3.4's v2
//! proxy before etcd. The CPU per request is the proxy process's alone (the member behind it
//! does the same work in both columns as in the plain 1-member cells).

use super::*;

/// A proxy process in front of a cluster; killed when dropped.
struct Proxy {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    /// Starts a proxy of `cluster`'s kind on a free 127.0.0.1 port, peers from its members.
    fn start(cluster: &Cluster) -> Result<Proxy, String> {
        let (status, body) =
            http_get(cluster.leader, "/v2/members").map_err(|e| format!("members: {e}"))?;
        if status != 200 {
            return Err(format!("members: status {status}"));
        }
        let members: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("members: {e}"))?;
        let initial: Vec<String> = members["members"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| format!("{}={}", m["name"].as_str().unwrap_or(""), m["peerURLs"][0]))
            .map(|s| s.replace('"', ""))
            .collect();
        let addr = bind_free(Ipv4Addr::LOCALHOST)
            .local_addr()
            .map_err(|e| e.to_string())?;
        let log = cluster.dir.join("proxy.log");
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(cluster.kind.binary());
        cmd.args(["--proxy", "on", "--data-dir"])
            .arg(cluster.dir.join("proxy.data"))
            .args(["--listen-client-urls", &format!("http://{addr}")])
            .args(["--initial-cluster", &initial.join(",")])
            .stdout(Stdio::null())
            .stderr(log_file);
        let child = cmd.spawn().map_err(|e| e.to_string())?;
        let proxy = Proxy { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if matches!(http_get(addr, "/v2/keys/"), Ok((200, _))) {
                return Ok(proxy);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} proxy not ready:\n{}",
                    cluster.kind.name(),
                    std::fs::read_to_string(&proxy.log).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub fn proxy_section(
    root: &Path,
    etcd_bin: Option<&PathBuf>,
    mode: &Mode,
    notes: &mut Vec<String>,
) {
    let tern = Cluster::start(Kind::Tern, 1, root, None);
    let etcd = etcd_bin.map(|b| Cluster::start(Kind::Etcd(b.clone()), 1, root, None));
    let start = |c: &Cluster| match Proxy::start(c) {
        Ok(p) => Some(p),
        Err(e) => {
            println!("{} proxy did not start: {e}\n", c.kind.name());
            None
        }
    };
    let tern_proxy = start(&tern);
    let etcd_proxy = etcd.as_ref().and_then(start);
    println!("## Proxy (1 member behind a `--proxy on`, 64 B, 64 clients, keep-alive)\n");
    println!(
        "The load goes to the proxy; CPU µs/req is the proxy process's (user + system), as in \
         the TLS section. tern's proxy has as many shards as the machine has cores.\n"
    );
    println!(
        "| cell | tern req/s | etcd req/s | tern/etcd | tern p50 / p90 / p99 ms | \
         etcd p50 / p90 / p99 ms | tern proxy CPU µs/req (user / sys) | etcd proxy CPU µs/req \
         (user / sys) | client CPU µs/req (tern / etcd run) |"
    );
    println!("|---|---:|---:|---:|---|---|---:|---:|---:|");
    for op in [Op::Get, Op::Put] {
        let cell = Cell {
            op,
            value_size: 64,
            clients: 64,
            target: Target::Leader,
        };
        let run = |p: &Proxy| {
            let mut spec = cell_spec([Endpoint::plain(p.addr)], &cell, mode);
            spec.request_timeout = Duration::from_secs(60);
            run_measured(&spec, p.child.id())
        };
        let t = match &tern_proxy {
            Some(p) => run(p),
            None => (Err("the proxy did not start".to_string()), None),
        };
        let e = etcd_proxy.as_ref().map(run);
        let label = format!("proxy section {}", cell.name());
        note_errors(notes, &label, "tern", Some(&t.0));
        note_errors(notes, &label, "etcd", e.as_ref().map(|e| &e.0));
        println!(
            "{}",
            measured_row(&cell, "through the proxy", &t, e.as_ref())
        );
    }
    println!();
}
