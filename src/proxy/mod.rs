//! Proxy mode (`--proxy on|readonly`, manual §2.3 and §3.4): a process that serves the client
//! API by forwarding every request to a member of a cluster it learns from its peers.
//!
//! Start-up, as etcd's: the peer URLs come from the proxy's own data dir (`proxy/cluster`,
//! written at every refresh, so a restart needs neither the discovery service nor DNS), else
//! from `--discovery` (waiting until the cluster is complete), `--discovery-srv` or
//! `--initial-cluster`. A refresher thread asks the first peer that answers for the member
//! list (`GET /members` on the peer port) every `--proxy-refresh-interval` (every second
//! while no endpoint is available) and publishes the members' client URLs, shuffled once per
//! refresh ([`director`]). Thread-per-core like a member: every shard accepts on every client
//! listener and forwards on connections of its own ([`forward`]).
//!
//! Owns the proxy's start-up, the cluster file and the refresher. Knows nothing about the
//! keys API, raft or the store; a proxy never opens a WAL.

pub mod director;
pub mod forward;

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{Config, ProxyMode};
use crate::http::Limits;
use crate::listener::{accept_on_all, probed_addresses, shard_serving, Listen};
use crate::metrics::proxy::ProxyMetrics;
use crate::server::StartError;
use crate::shard::Shared;
use director::{Director, Published};
use forward::{ProxyHandler, Timeouts};

/// How long the refresher waits for a peer's member list.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);
/// The refresh interval while no endpoint is available (etcd's director does the same).
const STARVED_REFRESH: Duration = Duration::from_secs(1);

/// The proxy's cluster file in its data dir, as etcd names it.
pub fn cluster_file(data_dir: &Path) -> PathBuf {
    data_dir.join("proxy").join("cluster")
}

/// Reads the peer URLs a previous run wrote (`{"PeerURLs":[…]}`); `None` when there is no file.
fn read_cluster_file(path: &Path) -> Result<Option<Vec<String>>, StartError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StartError(format!(
                "proxy: cannot read {}: {e}",
                path.display()
            )))
        }
    };
    #[derive(serde::Deserialize)]
    struct ClusterFile {
        #[serde(rename = "PeerURLs")]
        peer_urls: Vec<String>,
    }
    let file: ClusterFile = serde_json::from_slice(&bytes)
        .map_err(|e| StartError(format!("proxy: cannot parse {}: {e}", path.display())))?;
    Ok(Some(file.peer_urls).filter(|u| !u.is_empty()))
}

/// Writes the cluster file atomically (a temporary file renamed over it).
fn write_cluster_file(path: &Path, peer_urls: &[String]) -> std::io::Result<()> {
    let body = serde_json::json!({ "PeerURLs": peer_urls }).to_string();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, path)
}

/// Where the peer URLs come from on a first start, in the manual's order of precedence.
fn initial_peer_urls(
    config: &Config,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Vec<String>, StartError> {
    if let Some(url) = &config.discovery {
        tracing::info!("proxy: waiting for the cluster at {url} to be complete");
        let via = crate::cluster::discovery::Via {
            tls: Some(tls.clone()),
            proxy: config.discovery_proxy.clone(),
        };
        let found = crate::cluster::discovery::get_cluster(url, &via)
            .map_err(|e| StartError(e.to_string()))?;
        return Ok(peer_urls_of(&found));
    }
    if let Some(domain) = &config.discovery_srv {
        let server = crate::dns::name_server();
        return crate::cluster::srv::peer_urls(domain, &server).map_err(StartError);
    }
    Ok(peer_urls_of(&config.initial_cluster.to_string()))
}

/// The URLs of a `name=url,…` cluster string.
fn peer_urls_of(cluster: &str) -> Vec<String> {
    cluster
        .split(',')
        .filter_map(|pair| pair.split_once('=').map(|(_, u)| u.trim().to_string()))
        .filter(|u| !u.is_empty())
        .collect()
}

/// What one refresh learnt: the members' peer URLs and client URLs.
fn fetch_cluster(
    peer_urls: &[String],
    tls: &Arc<rustls::ClientConfig>,
) -> Result<(Vec<String>, Vec<String>), String> {
    let mut last = String::from("no peer URL");
    for url in peer_urls {
        match crate::client::peer_members(url, PEER_TIMEOUT, tls.clone()) {
            Ok((_, members)) => {
                let peers = members.iter().flat_map(|m| m.peer_urls.clone()).collect();
                let clients = members.iter().flat_map(|m| m.client_urls.clone()).collect();
                return Ok((peers, clients));
            }
            Err(e) => last = format!("{url}: {e}"),
        }
    }
    Err(last)
}

/// A random permutation, from the operating system's randomness.
fn shuffle(v: &mut [String]) {
    use ring::rand::SecureRandom;
    let mut seed = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut seed);
    let mut x = u64::from_le_bytes(seed) | 1;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

/// The refresher: asks the peers for the member list, publishes the client URLs and keeps
/// the cluster file current. Runs until the process ends.
struct Refresher {
    peer_urls: Vec<String>,
    file: PathBuf,
    tls: Arc<rustls::ClientConfig>,
    published: Arc<Published>,
    interval: Duration,
    last: Option<Vec<String>>,
}

impl Refresher {
    fn refresh(&mut self) {
        match fetch_cluster(&self.peer_urls, &self.tls) {
            Ok((peers, mut clients)) => {
                if !peers.is_empty() && peers != self.peer_urls {
                    self.peer_urls = peers;
                }
                if let Err(e) = write_cluster_file(&self.file, &self.peer_urls) {
                    tracing::warn!("proxy: cannot write {}: {e}", self.file.display());
                }
                let mut sorted = clients.clone();
                sorted.sort();
                if self.last.as_ref() != Some(&sorted) {
                    tracing::info!("proxy: endpoints found {clients:?}");
                    self.last = Some(sorted);
                }
                shuffle(&mut clients);
                self.published.publish(clients);
            }
            Err(e) => {
                static FAILED: crate::ratelog::RateLimited =
                    crate::ratelog::RateLimited::new(crate::ratelog::DEFAULT_INTERVAL);
                crate::ratelog!(FAILED, "proxy: could not retrieve cluster information: {e}");
            }
        }
    }

    fn run(mut self) {
        loop {
            let wait = if self.published.current().is_empty() {
                STARVED_REFRESH.min(self.interval)
            } else {
                self.interval
            };
            let until = Instant::now() + wait;
            while Instant::now() < until && !self.published.take_starved() {
                std::thread::sleep(Duration::from_millis(50).min(wait));
            }
            self.refresh();
        }
    }
}

/// Interns a response header name: the proxy's responses carry the member's headers, and a
/// [`crate::http::Response`]'s header names are `&'static str`. The names etcd and tern send
/// are known; others are kept (leaked once each, at most [`MAX_INTERNED`]) and beyond that
/// dropped, so a hostile member cannot grow the proxy's memory.
pub(crate) fn header_name(name: &str) -> Option<&'static str> {
    const KNOWN: &[&str] = &[
        "Content-Type",
        "X-Etcd-Index",
        "X-Raft-Index",
        "X-Raft-Term",
        "X-Etcd-Cluster-Id",
        "Date",
        "Access-Control-Allow-Origin",
        "Access-Control-Allow-Methods",
        "Access-Control-Allow-Headers",
        "Www-Authenticate",
        "Location",
        "X-Content-Type-Options",
        "Allow",
    ];
    if let Some(k) = KNOWN.iter().find(|k| **k == name) {
        return Some(k);
    }
    static INTERNED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut interned = INTERNED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(k) = interned.iter().find(|k| **k == name) {
        return Some(k);
    }
    if interned.len() >= MAX_INTERNED || name.len() > 64 {
        return None;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    interned.push(leaked);
    Some(leaked)
}

/// Most distinct unknown header names a proxy passes on.
const MAX_INTERNED: usize = 256;

/// The TLS configuration for forwarding to `https://` members: the client certificate files
/// when given (`--cert-file`, `--key-file`, `--trusted-ca-file`), else the peer ones, as
/// etcd's proxy chooses.
fn forward_tls(
    config: &Config,
    peer: &Arc<rustls::ClientConfig>,
) -> Result<Arc<rustls::ClientConfig>, StartError> {
    let t = &config.client_tls;
    if t.is_empty() {
        return Ok(peer.clone());
    }
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    crate::tls::client::client_config(&crate::tls::client::ClientFiles {
        ca_file: path(&t.trusted_ca_file).or_else(|| path(&t.ca_file)),
        cert_file: path(&t.cert_file),
        key_file: path(&t.key_file),
    })
    .map_err(StartError)
}

/// Runs a proxy until the process is stopped.
pub fn run(config: Config) -> Result<(), StartError> {
    let tls = crate::tls::setup(&config).map_err(StartError)?;
    let peer_tls = tls.peer_client.get();
    let upstream_tls = forward_tls(&config, &peer_tls)?;
    let file = cluster_file(&config.data_dir);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            StartError(format!(
                "cannot access data directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    let peer_urls = match read_cluster_file(&file)? {
        Some(urls) => {
            tracing::info!(
                "proxy: using peer urls {urls:?} from cluster file {}",
                file.display()
            );
            urls
        }
        None => {
            let urls = initial_peer_urls(&config, &peer_tls)?;
            tracing::info!("proxy: using peer urls {urls:?}");
            urls
        }
    };
    if peer_urls.is_empty() {
        return Err(StartError(
            "proxy: no peer URL: give --initial-cluster, --discovery or --discovery-srv".into(),
        ));
    }
    let nshards = config.shards.max(1);
    let (_, connections) = crate::process::raise_fd_limit(nshards);
    let listen = probed_addresses(&config.listen_client_urls, &tls.client)?;
    let published = Arc::new(Published::default());
    let mut refresher = Refresher {
        peer_urls,
        file,
        tls: peer_tls,
        published: published.clone(),
        interval: config
            .proxy_refresh_interval
            .max(Duration::from_millis(100)),
        last: None,
    };
    refresher.refresh();
    std::thread::Builder::new()
        .name("tern-proxy-refresh".into())
        .spawn(move || refresher.run())
        .map_err(|e| StartError(format!("cannot start the refresher: {e}")))?;

    let shared = Arc::new(Shared::new(nshards, Duration::from_secs(5), 1));
    crate::shutdown::install(shared.clone()).map_err(StartError)?;
    let plan = ShardPlan {
        listen,
        limits: Limits {
            max_body_bytes: config.max_request_bytes,
            ..Limits::default()
        },
        shared,
        published,
        metrics: Arc::new(ProxyMetrics::default()),
        readonly: config.proxy == ProxyMode::Readonly,
        failure_wait: config.proxy_failure_wait,
        timeouts: Timeouts {
            dial: config.proxy_dial_timeout,
            write: config.proxy_write_timeout,
            read: config.proxy_read_timeout,
        },
        tls: upstream_tls,
    };
    tracing::info!(
        "{} proxy with {nshards} shard(s) serving clients on {} (at most {connections} connections)",
        if plan.readonly { "read-only" } else { "read-write" },
        plan.listen
            .iter()
            .map(|l| l.addr.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let all = plan.shared.clone();
    crate::server::run_executors("proxy", nshards, config.pin_shards, &all, move |_| {
        let plan = plan.clone();
        move || proxy_shard(plan)
    })
}

/// Everything a proxy shard needs, cloned into each executor.
#[derive(Clone)]
struct ShardPlan {
    listen: Vec<Listen>,
    limits: Limits,
    shared: Arc<Shared>,
    published: Arc<Published>,
    metrics: Arc<ProxyMetrics>,
    readonly: bool,
    failure_wait: Duration,
    timeouts: Timeouts,
    tls: Arc<rustls::ClientConfig>,
}

async fn proxy_shard(plan: ShardPlan) -> Result<(), StartError> {
    let handler = Rc::new(ProxyHandler::new(
        Director::new(plan.published.clone(), plan.failure_wait),
        plan.readonly,
        plan.timeouts,
        Some(plan.tls.clone()),
        plan.metrics.clone(),
    ));
    let loops = accept_on_all(&plan.listen, &handler, plan.limits, &plan.shared, None)?;
    shard_serving(&plan.shared);
    for task in loops {
        task.await;
    }
    std::future::pending::<()>().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_file_round_trips_in_etcds_format() {
        let dir = std::env::temp_dir().join(format!("tern-proxy-file-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("proxy")).unwrap();
        let file = cluster_file(&dir);
        assert_eq!(read_cluster_file(&file).unwrap(), None);
        let urls = vec![
            "http://10.0.0.1:2380".to_string(),
            "http://10.0.0.2:2380".into(),
        ];
        write_cluster_file(&file, &urls).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            r#"{"PeerURLs":["http://10.0.0.1:2380","http://10.0.0.2:2380"]}"#
        );
        assert_eq!(read_cluster_file(&file).unwrap(), Some(urls));
        std::fs::write(&file, "{").unwrap();
        assert!(read_cluster_file(&file)
            .unwrap_err()
            .0
            .contains("cannot parse"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn header_names_are_interned_within_a_bound() {
        assert_eq!(header_name("X-Etcd-Index"), Some("X-Etcd-Index"));
        let a = header_name("X-Custom-Thing").unwrap();
        assert!(std::ptr::eq(a, header_name("X-Custom-Thing").unwrap()));
        assert_eq!(header_name(&"x".repeat(65)), None);
    }

    #[test]
    fn shuffling_keeps_every_endpoint() {
        let mut v: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        shuffle(&mut v);
        v.sort_by_key(|s| s.parse::<u32>().unwrap());
        assert_eq!(v, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
    }

    #[test]
    fn peer_urls_come_from_a_cluster_string() {
        assert_eq!(
            peer_urls_of("a=http://1:2380,b=http://2:2380"),
            ["http://1:2380", "http://2:2380"]
        );
    }
}
