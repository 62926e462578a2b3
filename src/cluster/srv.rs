//! DNS discovery for members (`--discovery-srv DOMAIN`, manual §3.2.3): the initial cluster is
//! the peers `_etcd-server-ssl._tcp.<DOMAIN>` (https) and `_etcd-server._tcp.<DOMAIN>` (http)
//! SRV records name.
//!
//! As etcd does it: a target whose address is one of this member's advertised peer URLs' is
//! this member and takes its name; the others get the names `0`, `1`, … (member IDs come from
//! peer URLs and the cluster token, so the names need not agree across members). A member
//! that finds itself in no record cannot start. Owns the lookup and the naming; the DNS
//! protocol is [`crate::dns`].

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// The peer URLs the SRV records of `domain` name (`_etcd-server-ssl._tcp` as `https`, then
/// `_etcd-server._tcp` as `http`), in that order; etcd's error texts when there are none.
pub fn peer_urls(domain: &str, server: &str) -> Result<Vec<String>, String> {
    let mut urls = Vec::new();
    let mut errors = Vec::new();
    for (service, scheme) in [("_etcd-server-ssl", "https"), ("_etcd-server", "http")] {
        let query = format!("{service}._tcp.{domain}");
        match crate::dns::lookup_srv(server, &query, Duration::from_secs(5)) {
            Ok(r) if !r.is_empty() => urls.extend(
                r.iter()
                    .map(|r| format!("{scheme}://{}:{}", r.target, r.port)),
            ),
            Ok(_) => errors.push(format!(
                "error querying DNS SRV records for {service}: no records"
            )),
            Err(e) => errors.push(format!("error querying DNS SRV records for {service}: {e}")),
        }
    }
    if urls.is_empty() {
        return Err(errors.join(", "));
    }
    Ok(urls)
}

/// The initial cluster `name=url,…` from the SRV records of `domain`: this member (the
/// record whose address is one of `advertised`) is `name`, the others are numbered.
pub fn initial_cluster(
    name: &str,
    domain: &str,
    advertised: &[String],
    server: &str,
) -> Result<String, String> {
    let mine: Vec<SocketAddr> = advertised
        .iter()
        .filter_map(|u| u.split_once("://").map(|(_, rest)| rest))
        .map(|rest| rest.split('/').next().unwrap_or(rest))
        .flat_map(|authority| authority.to_socket_addrs().into_iter().flatten())
        .collect();
    let mut parts = Vec::new();
    let mut found_self = false;
    let mut temp_name = 0;
    for url in peer_urls(domain, server)? {
        let host = url.split_once("://").map_or(url.as_str(), |(_, h)| h);
        let is_me = host
            .to_socket_addrs()
            .map(|mut addrs| addrs.any(|a| mine.contains(&a)))
            .unwrap_or(false);
        let member = if is_me {
            found_self = true;
            name.to_string()
        } else {
            temp_name += 1;
            (temp_name - 1).to_string()
        };
        parts.push(format!("{member}={url}"));
    }
    if !found_self {
        return Err(format!("cannot find local etcd {name} from SRV records."));
    }
    Ok(parts.join(","))
}
