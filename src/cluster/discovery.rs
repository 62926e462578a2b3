//! etcd's v2 discovery protocol (`--discovery URL`, manual §2.4 and §3.2.2): a new member
//! learns its initial cluster from a directory in another etcd (or tern) cluster's keys space.
//!
//! The steps, as etcd takes them: read `<URL>/_config/size`; list the members registered under
//! `<URL>` (oldest first) and give up if the first `size` of them do not include this member
//! ("cluster is full"); register `<URL>/<member ID in hex>` = `name=peerURL,…` with
//! `prevExist=false`; watch `<URL>` until `size` members have registered; the first `size`
//! registrations are the initial cluster. Requests that fail to connect are retried with a
//! growing pause, three times.
//!
//! Owns the protocol and its errors (etcd's texts); the HTTP is the blocking client of
//! [`crate::client`]. Knows nothing about how the cluster it returns is started.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::{HttpResponse, Request, Transport, Url};

/// Why discovery failed, in etcd's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryError {
    /// No `_config/size` key: the manual's "the cluster doesn't have a size configuration
    /// value in <URL>/_config".
    SizeNotFound(String),
    BadSizeKey,
    TokenNotFound,
    /// The first `size` registrations are other members.
    FullCluster,
    DuplicateId,
    DuplicateName,
    TooManyRetries(String),
    BadEndpoint(String),
}

impl std::fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiscoveryError::SizeNotFound(url) => write!(
                f,
                "error: the cluster doesn't have a size configuration value in {url}/_config"
            ),
            DiscoveryError::BadSizeKey => f.write_str("discovery: size key is bad"),
            DiscoveryError::TokenNotFound => f.write_str("discovery: token not found"),
            DiscoveryError::FullCluster => f.write_str("discovery: cluster is full"),
            DiscoveryError::DuplicateId => f.write_str("discovery: found duplicate id"),
            DiscoveryError::DuplicateName => f.write_str("discovery: found duplicate name"),
            DiscoveryError::TooManyRetries(last) => {
                write!(f, "discovery: too many retries (last error: {last})")
            }
            DiscoveryError::BadEndpoint(why) => {
                write!(f, "discovery: bad discovery endpoint ({why})")
            }
        }
    }
}

/// How many times a request that could not reach the discovery service is tried again.
const RETRIES: u32 = 3;
/// The first pause before a retry; it doubles.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// A request's deadline (a watch that sees nothing in this time is simply made again).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A registered member: its key's last segment, its value, and when it was registered.
#[derive(Debug, Clone, PartialEq)]
struct Registration {
    id: String,
    value: String,
    created: u64,
}

struct Discovery {
    url: String,
    base: Url,
    transport: Transport,
    /// This member's ID in hex: its key's last segment.
    id: String,
}

impl Discovery {
    fn new(url: &str, member_id: u64, via: &Via) -> Result<Discovery, DiscoveryError> {
        let base = Url::parse(url).map_err(DiscoveryError::BadEndpoint)?;
        let proxy = match &via.proxy {
            Some(p) => {
                let p = Url::parse(p)
                    .ok()
                    .filter(|u| u.scheme == "http" && !u.host.is_empty())
                    .ok_or_else(|| {
                        DiscoveryError::BadEndpoint(format!(
                            "--discovery-proxy {p:?} is not an http://host:port URL"
                        ))
                    })?;
                tracing::info!("discovery: using proxy {:?}", p.to_string_go());
                Some(p)
            }
            None => None,
        };
        Ok(Discovery {
            url: url.trim_end_matches('/').to_string(),
            base,
            transport: {
                let mut t = Transport::default();
                t.dial_timeout = Some(Duration::from_secs(5));
                t.tls = via.tls.clone();
                t.proxy = proxy;
                t
            },
            id: crate::cluster::id_hex(member_id),
        })
    }

    /// Watches the token from `index` on until `size` members have registered; the first
    /// `size` of them as `name=peerURL,…`.
    fn wait_for_all(
        &mut self,
        size: usize,
        mut nodes: Vec<Registration>,
        mut index: u64,
    ) -> Result<String, DiscoveryError> {
        while nodes.len() < size {
            tracing::info!(
                "discovery: found {} of {size} peer(s), waiting for more",
                nodes.len()
            );
            let (node, next) = self.wait(index + 1)?;
            index = next;
            if let Some(node) = node {
                if !nodes.iter().any(|n| n.id == node.id) {
                    nodes.push(node);
                }
            }
        }
        nodes.truncate(size);
        to_initial_cluster(&nodes)
    }
}

/// How the discovery service is reached: TLS settings for an `https` URL (the system's roots
/// when `None`) and an HTTP forward proxy (`--discovery-proxy`).
#[derive(Clone, Default)]
pub struct Via {
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    pub proxy: Option<String>,
}

/// Registers this member (`member_id`, announcing `registration` = `name=peerURL,…`) under
/// the discovery `url` and waits for the others; the initial cluster as `name=peerURL,…`.
pub fn join_cluster(
    url: &str,
    member_id: u64,
    registration: &str,
    via: &Via,
) -> Result<String, DiscoveryError> {
    let mut d = Discovery::new(url, member_id, via)?;
    let size = d.size()?;
    let (nodes, _) = d.registrations()?;
    d.check_room(&nodes, size)?;
    if !nodes.iter().any(|n| n.id == d.id) {
        d.register(registration)?;
    }
    let (nodes, index) = d.registrations()?;
    d.check_room(&nodes, size)?;
    d.wait_for_all(size, nodes, index)
}

/// The cluster registered under the discovery `url`, without registering (etcd's
/// `GetCluster`, what a proxy bootstraps from): waits until the cluster is complete.
pub fn get_cluster(url: &str, via: &Via) -> Result<String, DiscoveryError> {
    let mut d = Discovery::new(url, 0, via)?;
    let size = d.size()?;
    let (nodes, index) = d.registrations()?;
    d.wait_for_all(size, nodes, index)
}

impl Discovery {
    fn at(&self, sub: &str, query: &str) -> Url {
        let mut u = self.base.clone();
        if !sub.is_empty() {
            u.path = format!("{}/{sub}", u.path.trim_end_matches('/'));
        }
        u.query = query.to_string();
        u
    }

    /// One request, tried again when the service cannot be reached.
    fn send(&mut self, req: Request) -> Result<HttpResponse, DiscoveryError> {
        let mut pause = FIRST_PAUSE;
        let mut last = String::new();
        for attempt in 0..=RETRIES {
            if attempt > 0 {
                tracing::warn!("discovery: {last}; trying again in {}s", pause.as_secs());
                std::thread::sleep(pause);
                pause *= 2;
            }
            let deadline = Some(Instant::now() + REQUEST_TIMEOUT);
            match self.transport.round_trip(&req, deadline, deadline) {
                Ok(resp) => return Ok(resp),
                Err(e) => last = format!("{} {}: {e:?}", req.method, req.url.to_string_go()),
            }
        }
        Err(DiscoveryError::TooManyRetries(last))
    }

    fn size(&mut self) -> Result<usize, DiscoveryError> {
        let resp = self.send(Request::new("GET", self.at("_config/size", "")))?;
        match resp.status {
            200 => {}
            404 => return Err(DiscoveryError::SizeNotFound(self.url.clone())),
            s => return Err(DiscoveryError::BadEndpoint(format!("status {s}"))),
        }
        let v: Value =
            serde_json::from_slice(&resp.body).map_err(|_| DiscoveryError::BadSizeKey)?;
        v["node"]["value"]
            .as_str()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .ok_or(DiscoveryError::BadSizeKey)
    }

    /// The members registered so far, oldest first, and the index to watch after.
    fn registrations(&mut self) -> Result<(Vec<Registration>, u64), DiscoveryError> {
        let resp = self.send(Request::new("GET", self.at("", "")))?;
        match resp.status {
            200 => {}
            404 => return Err(DiscoveryError::TokenNotFound),
            s => return Err(DiscoveryError::BadEndpoint(format!("status {s}"))),
        }
        let index = resp
            .header("x-etcd-index")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let v: Value = serde_json::from_slice(&resp.body)
            .map_err(|e| DiscoveryError::BadEndpoint(e.to_string()))?;
        let mut nodes: Vec<Registration> = v["node"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(registration)
            .collect();
        nodes.sort_by_key(|n| n.created);
        Ok((nodes, index))
    }

    /// Full when the first `size` registrations are all other members.
    fn check_room(&self, nodes: &[Registration], size: usize) -> Result<(), DiscoveryError> {
        if nodes.len() >= size && !nodes[..size].iter().any(|n| n.id == self.id) {
            return Err(DiscoveryError::FullCluster);
        }
        Ok(())
    }

    fn register(&mut self, value: &str) -> Result<(), DiscoveryError> {
        let body = crate::client::encode_values(&[("value", value.to_string())]);
        let req = Request::new("PUT", self.at(&self.id, "prevExist=false")).form(body);
        match self.send(req)?.status {
            200 | 201 => Ok(()),
            412 => Err(DiscoveryError::DuplicateId),
            s => Err(DiscoveryError::BadEndpoint(format!(
                "registering: status {s}"
            ))),
        }
    }

    /// Waits for the next change under the token from `index` on: the registration it made,
    /// if it was one, and the index to watch after.
    fn wait(&mut self, index: u64) -> Result<(Option<Registration>, u64), DiscoveryError> {
        let query = format!("wait=true&recursive=true&waitIndex={index}");
        let resp = self.send(Request::new("GET", self.at("", &query)))?;
        if resp.status != 200 {
            return Err(DiscoveryError::BadEndpoint(format!(
                "watching: status {}",
                resp.status
            )));
        }
        let v: Value = serde_json::from_slice(&resp.body)
            .map_err(|e| DiscoveryError::BadEndpoint(e.to_string()))?;
        let next = v["node"]["modifiedIndex"].as_u64().unwrap_or(index);
        let node = match v["action"].as_str() {
            Some("set" | "create" | "update" | "compareAndSwap") => registration(&v["node"]),
            _ => None,
        };
        Ok((node, next.max(index)))
    }
}

/// A member's registration node; `None` for the `_config` directory and anything that is not
/// a key with a value.
fn registration(node: &Value) -> Option<Registration> {
    let key = node["key"].as_str()?;
    let id = key.rsplit('/').next()?.to_string();
    if id == "_config" || node["dir"].as_bool() == Some(true) || key.contains("/_config/") {
        return None;
    }
    Some(Registration {
        id,
        value: node["value"].as_str()?.to_string(),
        created: node["createdIndex"].as_u64().unwrap_or(0),
    })
}

/// The registrations' `name=peerURL` lists joined; a name two members registered is an error.
fn to_initial_cluster(nodes: &[Registration]) -> Result<String, DiscoveryError> {
    let mut names = std::collections::BTreeMap::new();
    for n in nodes {
        for pair in n.value.split(',') {
            let name = pair.split('=').next().unwrap_or("");
            if let Some(other) = names.insert(name.to_string(), n.id.clone()) {
                if other != n.id {
                    return Err(DiscoveryError::DuplicateName);
                }
            }
        }
    }
    Ok(nodes
        .iter()
        .map(|n| n.value.as_str())
        .collect::<Vec<_>>()
        .join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(id: &str, value: &str, created: u64) -> Registration {
        Registration {
            id: id.into(),
            value: value.into(),
            created,
        }
    }

    #[test]
    fn registrations_skip_the_config_directory() {
        let dir = serde_json::json!({"key": "/d/tok/_config", "dir": true, "createdIndex": 3});
        assert_eq!(registration(&dir), None);
        let size = serde_json::json!({"key": "/d/tok/_config/size", "value": "3"});
        assert_eq!(registration(&size), None);
        let m = serde_json::json!({"key": "/d/tok/8e9e05c52164694d",
            "value": "a=http://10.0.0.1:2380", "createdIndex": 7});
        assert_eq!(
            registration(&m),
            Some(reg("8e9e05c52164694d", "a=http://10.0.0.1:2380", 7))
        );
    }

    #[test]
    fn the_initial_cluster_joins_registrations_and_refuses_a_name_twice() {
        let nodes = [
            reg("1", "a=http://10.0.0.1:2380,a=http://10.0.0.1:2381", 4),
            reg("2", "b=http://10.0.0.2:2380", 5),
        ];
        assert_eq!(
            to_initial_cluster(&nodes).unwrap(),
            "a=http://10.0.0.1:2380,a=http://10.0.0.1:2381,b=http://10.0.0.2:2380"
        );
        let twice = [nodes[0].clone(), reg("3", "a=http://10.0.0.3:2380", 6)];
        assert_eq!(
            to_initial_cluster(&twice),
            Err(DiscoveryError::DuplicateName)
        );
    }

    #[test]
    fn errors_read_like_etcds() {
        assert_eq!(
            DiscoveryError::SizeNotFound("https://d.example/tok".into()).to_string(),
            "error: the cluster doesn't have a size configuration value in https://d.example/tok/_config"
        );
        assert_eq!(
            DiscoveryError::FullCluster.to_string(),
            "discovery: cluster is full"
        );
    }
}
