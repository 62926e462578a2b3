//! The HTTP endpoints on `--listen-peer-urls` (shard 0 only):
//! - `POST /raft/msgs`: a batch of raft messages (see the module above for the framing);
//! - `POST /raft/snapshot`: one snapshot message;
//! - `GET /raft/stream/<sender ID>`: the sender's stream of this member's messages to it
//!   ([`super::stream`]), a chunked body that lasts as long as the link does;
//! - `GET /members`: the member list as a JSON array (etcd's peer `/members`, used by a joining
//!   member to check its configuration);
//! - `GET /version`: the server and cluster versions.
//!
//! Raft requests are judged by their head, before the body is read ([`Handler::admit`]): they
//! must carry this cluster's ID (else 412, logged), a sender that was not removed (else 410,
//! which tells the sender to stop) and a sender in the member list (else 403: a member not
//! known yet, e.g. added by an entry this member has not applied, retries later; while the
//! list is still empty, before the first entries are applied, any sender of this cluster
//! is taken). A refused request is answered at once and its connection closed, its body
//! unread. Bodies are bounded per path: `/raft/msgs` by [`PeerApi::max_batch_body`] (the
//! sender splits larger batches), `/raft/snapshot` by [`MAX_SNAPSHOT_BODY`], anything else
//! by [`MAX_OTHER_BODY`]. A snapshot body streams to a file in the snap directory as it arrives
//! ([`super::incoming`]); only the message without its data goes to the raft inbox.
//! Knows nothing of the raft node beyond its inbox, nor of the client API.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use super::incoming::{decode_received, SnapshotSink};
use super::{decode_frames, stream, Links, TransportStats, CLUSTER_ID_HEADER, FROM_HEADER};
use crate::cluster::{id_hex, write_member_json};
use crate::http::{Admit, Handler, Method, Request, RequestHead, Response};
use crate::ratelog::RateLimited;
use crate::shard::local::Mailbox;
use crate::shard::{RaftInput, Shared};

/// Largest `/raft/snapshot` body: a snapshot of the whole store.
pub const MAX_SNAPSHOT_BODY: usize = 1 << 30;
/// Largest body of any other peer request (none of them needs one).
pub const MAX_OTHER_BODY: usize = 64 * 1024;

pub struct PeerApi {
    pub cluster: u64,
    pub shared: Arc<Shared>,
    pub inbox: Rc<Mailbox<RaftInput>>,
    pub stats: Arc<TransportStats>,
    /// `/version`'s body.
    pub version_json: String,
    /// Largest `/raft/msgs` body (see [`super::max_batch_body`]).
    pub max_batch_body: usize,
    /// Where snapshot bodies are received (the member's snap directory).
    pub snap_dir: PathBuf,
    /// This member's links to its peers, which the streams peers open attach to.
    pub links: Rc<Links>,
}

fn text(status: u16, body: &str) -> Response {
    let mut r = Response::text(status, body.as_bytes().to_vec());
    r.push_header("X-Content-Type-Options", "nosniff");
    r
}

impl PeerApi {
    fn members(&self) -> Response {
        let mut body = b"[".to_vec();
        for (i, m) in self.shared.membership().members().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            write_member_json(&mut body, m);
        }
        body.extend_from_slice(b"]\n");
        Response::full(200, body)
            .with_header("Content-Type", "application/json")
            .with_header("X-Etcd-Cluster-ID", id_hex(self.cluster))
    }

    /// Checks the sender's cluster and membership from a raft request's `X-Etcd-Cluster-ID`
    /// and `X-Server-From` headers: the sender's ID (0 if it gave none), or the answer to give.
    fn check_sender(&self, cluster: Option<&str>, from: Option<&str>) -> Result<u64, Response> {
        let theirs = cluster.unwrap_or("");
        let ours = id_hex(self.cluster);
        if !theirs.eq_ignore_ascii_case(&ours) {
            static MISMATCH: RateLimited = RateLimited::new(crate::ratelog::DEFAULT_INTERVAL);
            crate::ratelog!(
                MISMATCH,
                "request cluster ID mismatch (got {theirs} want {ours}) from {}",
                from.unwrap_or("?")
            );
            return Err(
                text(412, "cluster ID mismatch\n").with_header("X-Etcd-Cluster-ID", ours.clone())
            );
        }
        let membership = self.shared.membership();
        let from = from.and_then(|v| u64::from_str_radix(v, 16).ok());
        if from.is_some_and(|id| membership.is_removed(id)) {
            return Err(text(
                410,
                "the member has been permanently removed from the cluster\n",
            ));
        }
        let known = from.is_some_and(|id| membership.get(id).is_some());
        if !known && !membership.is_empty() {
            return Err(text(403, "the sender is not a member of this cluster\n"));
        }
        Ok(from.unwrap_or(0))
    }

    fn raft(&self, req: Request) -> Response {
        // Judged at admission already; the membership may have changed while the body came.
        let from = match self.check_sender(req.header(CLUSTER_ID_HEADER), req.header(FROM_HEADER)) {
            Ok(from) => from,
            Err(resp) => return resp,
        };
        let msgs = match decode_frames(&req.body) {
            Ok(m) => m,
            Err(e) => {
                self.stats.receive_failed(from);
                return text(400, &format!("bad raft message batch: {e}\n"));
            }
        };
        let appends = msgs
            .iter()
            .filter(|m| m.get_msg_type() == raft::eraftpb::MessageType::MsgAppend)
            .count();
        self.stats.received(
            from,
            msgs.len() as u64,
            appends as u64,
            req.body.len() as u64,
        );
        for m in msgs {
            self.inbox.push(RaftInput::Peer(Box::new(m)));
        }
        Response::new(204)
    }

    /// A peer opens the stream it receives this member's messages on. The path names the
    /// sender, which must be the one its headers name.
    fn stream(&self, req: Request) -> Response {
        let from = match self.check_sender(req.header(CLUSTER_ID_HEADER), req.header(FROM_HEADER)) {
            Ok(from) => from,
            Err(resp) => return resp,
        };
        let named = req.path.strip_prefix(stream::PATH_PREFIX).unwrap_or("");
        if u64::from_str_radix(named, 16).ok() != Some(from) || from == 0 {
            return text(400, "the stream must name its sender\n");
        }
        match self.links.attach_stream(from, self.stats.clone()) {
            Some(body) => {
                Response::stream(200, body).with_header("Content-Type", "application/octet-stream")
            }
            None => text(403, "no link to the sender yet\n"),
        }
    }

    /// A snapshot whose data a [`SnapshotSink`] wrote to a file: the body holds the message
    /// and the file's path.
    fn snapshot(&self, req: Request) -> Response {
        let from = req
            .header(FROM_HEADER)
            .and_then(|v| u64::from_str_radix(v, 16).ok());
        let (msg, path) = match decode_received(&req.body) {
            Ok(x) => x,
            Err(e) => {
                self.stats.snapshot_received(from.unwrap_or(0), false);
                return text(400, &format!("bad raft snapshot: {e}\n"));
            }
        };
        let checked = self.check_sender(req.header(CLUSTER_ID_HEADER), req.header(FROM_HEADER));
        let valid = msg.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot;
        if checked.is_err() || !valid {
            let _ = std::fs::remove_file(&path);
            return checked
                .err()
                .unwrap_or_else(|| text(400, "not a snapshot message\n"));
        }
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        let from = checked.unwrap_or(0);
        self.stats.received(from, 1, 0, size);
        self.stats.snapshot_received(from, true);
        self.inbox.push(RaftInput::PeerSnapshot {
            msg: Box::new(msg),
            path,
        });
        Response::new(204)
    }
}

impl Handler for PeerApi {
    fn admit(&self, head: &RequestHead) -> Admit {
        let limit = match (head.path.as_str(), &head.method) {
            ("/raft/msgs", Method::Post) => self.max_batch_body,
            ("/raft/snapshot", Method::Post) => MAX_SNAPSHOT_BODY,
            (p, Method::Get) if p.starts_with(stream::PATH_PREFIX) => MAX_OTHER_BODY,
            _ => return Admit::Body(MAX_OTHER_BODY),
        };
        match self.check_sender(head.header(CLUSTER_ID_HEADER), head.header(FROM_HEADER)) {
            Ok(_) if head.path == "/raft/snapshot" => {
                Admit::Stream(limit, Box::new(SnapshotSink::new(&self.snap_dir)))
            }
            Ok(_) => Admit::Body(limit),
            Err(resp) => Admit::Refuse(resp),
        }
    }

    async fn handle(&self, req: Request) -> Response {
        let get = matches!(req.method, Method::Get | Method::Head);
        match (req.path.as_str(), get) {
            ("/members", true) => self.members(),
            ("/version", true) => Response::full(200, self.version_json.clone().into_bytes())
                .with_header("Content-Type", "application/json"),
            ("/raft/msgs", false) if req.method == Method::Post => self.raft(req),
            ("/raft/snapshot", false) if req.method == Method::Post => self.snapshot(req),
            (p, _) if p.starts_with(stream::PATH_PREFIX) => {
                if req.method == Method::Get {
                    self.stream(req)
                } else {
                    text(405, "Method Not Allowed\n").with_header("Allow", "GET")
                }
            }
            ("/members" | "/version", false) => {
                text(405, "Method Not Allowed\n").with_header("Allow", "GET")
            }
            ("/raft/msgs" | "/raft/snapshot", _) => {
                text(405, "Method Not Allowed\n").with_header("Allow", "POST")
            }
            _ => text(404, "404 page not found\n"),
        }
    }
}
