//! Cluster identity: member IDs, the cluster ID, and the member list as the v2 API shows it.
//!
//! IDs are derived exactly as etcd derives them, so a configuration gives the same IDs in tern
//! and etcd and two clusters bootstrapped with different tokens never share an ID:
//! a member ID is the first 8 bytes (big endian) of SHA-1 over its sorted peer URLs concatenated
//! and the cluster token; the cluster ID is the first 8 bytes of SHA-1 over the sorted member IDs,
//! each as 8 big-endian bytes. Knows nothing about sockets or raft.

pub mod discovery;
pub mod membership;
pub mod srv;

use sha1::{Digest, Sha1};

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
}

impl Member {
    /// A member as the bootstrap configuration describes it; its ID is derived from peer URLs and token.
    pub fn new(name: &str, peer_urls: &[String], client_urls: &[String], token: &str) -> Member {
        let mut sorted: Vec<String> = peer_urls.to_vec();
        sorted.sort();
        Member {
            id: member_id(&sorted, token),
            name: name.to_string(),
            peer_urls: sorted,
            client_urls: client_urls.to_vec(),
        }
    }
}

fn sha1_prefix_u64(bytes: &[u8]) -> u64 {
    let digest = Sha1::digest(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// etcd's member ID: SHA-1 over the sorted peer URLs and the cluster token.
pub fn member_id(sorted_peer_urls: &[String], token: &str) -> u64 {
    let mut b = Vec::new();
    for u in sorted_peer_urls {
        b.extend_from_slice(u.as_bytes());
    }
    b.extend_from_slice(token.as_bytes());
    sha1_prefix_u64(&b)
}

/// etcd's cluster ID: SHA-1 over the sorted member IDs.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut b = Vec::with_capacity(8 * ids.len());
    for id in ids {
        b.extend_from_slice(&id.to_be_bytes());
    }
    sha1_prefix_u64(&b)
}

/// An ID as etcd prints it (`types.ID.String()`: `strconv.FormatUint(id, 16)`, no padding).
pub fn id_hex(id: u64) -> String {
    format!("{id:x}")
}

/// Appends one member as `/v2/members` renders it.
pub fn write_member_json(out: &mut Vec<u8>, m: &Member) {
    use crate::error::write_json_string;
    out.extend_from_slice(b"{\"id\":");
    write_json_string(out, &id_hex(m.id));
    out.extend_from_slice(b",\"name\":");
    write_json_string(out, &m.name);
    out.extend_from_slice(b",\"peerURLs\":");
    write_string_array(out, &m.peer_urls);
    out.extend_from_slice(b",\"clientURLs\":");
    write_string_array(out, &m.client_urls);
    out.push(b'}');
}

fn write_string_array(out: &mut Vec<u8>, items: &[String]) {
    out.push(b'[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        crate::error::write_json_string(out, s);
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_etcd_for_its_default_single_member() {
        // etcd 3.4 started with defaults (peer URL http://localhost:2380, token etcd-cluster)
        // reports member 8e9e05c52164694d in cluster cdf818194e3a8c32.
        let m = Member::new(
            "default",
            &["http://localhost:2380".to_string()],
            &[],
            "etcd-cluster",
        );
        assert_eq!(id_hex(m.id), "8e9e05c52164694d");
        assert_eq!(id_hex(cluster_id(&[m.id])), "cdf818194e3a8c32");
    }

    #[test]
    fn different_tokens_give_different_ids() {
        let urls = ["http://127.0.0.1:2380".to_string()];
        assert_ne!(member_id(&urls, "a"), member_id(&urls, "b"));
    }

    #[test]
    fn member_json_is_etcds_shape() {
        let m = Member {
            id: 0x8e9e05c52164694d,
            name: "default".into(),
            peer_urls: vec!["http://localhost:2380".into()],
            client_urls: vec!["http://127.0.0.1:12379".into()],
        };
        let mut out = Vec::new();
        write_member_json(&mut out, &m);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"id":"8e9e05c52164694d","name":"default","peerURLs":["http://localhost:2380"],"clientURLs":["http://127.0.0.1:12379"]}"#
        );
    }
}
