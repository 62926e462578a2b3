//! The HTTP endpoints on `--listen-peer-urls` (shard 0 only):
//! - `POST /raft/msgs`: a batch of raft messages (see the module above for the framing);
//! - `POST /raft/snapshot`: one snapshot message;
//! - `GET /members`: the member list as a JSON array (etcd's peer `/members`, used by a joining
//!   member to check its configuration);
//! - `GET /version`: the server and cluster versions.
//!
//! Raft requests must carry this cluster's ID (else 412, logged) and a sender that was not
//! removed (else 410, which tells the sender to stop).

use std::rc::Rc;
use std::sync::Arc;

use super::{decode_frames, TransportStats, CLUSTER_ID_HEADER, FROM_HEADER};
use crate::cluster::{id_hex, write_member_json};
use crate::http::{Handler, Method, Request, Response};
use crate::shard::local::Mailbox;
use crate::shard::{RaftInput, Shared};

pub struct PeerApi {
    pub cluster: u64,
    pub shared: Arc<Shared>,
    pub inbox: Rc<Mailbox<RaftInput>>,
    pub stats: Arc<TransportStats>,
    /// `/version`'s body.
    pub version_json: String,
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

    /// Checks the sender's cluster and membership; `Err` is the answer to give.
    fn admit(&self, req: &Request) -> Result<(), Response> {
        let theirs = req.header(CLUSTER_ID_HEADER).unwrap_or("");
        let ours = id_hex(self.cluster);
        if !theirs.eq_ignore_ascii_case(&ours) {
            eprintln!(
                "tern: request cluster ID mismatch (got {theirs} want {ours}) from {}",
                req.header(FROM_HEADER).unwrap_or("?")
            );
            return Err(
                text(412, "cluster ID mismatch\n").with_header("X-Etcd-Cluster-ID", ours.clone())
            );
        }
        let from = req
            .header(FROM_HEADER)
            .and_then(|v| u64::from_str_radix(v, 16).ok());
        if from.is_some_and(|id| self.shared.membership().is_removed(id)) {
            return Err(text(
                410,
                "the member has been permanently removed from the cluster\n",
            ));
        }
        Ok(())
    }

    fn raft(&self, req: Request) -> Response {
        if let Err(resp) = self.admit(&req) {
            return resp;
        }
        let msgs = match decode_frames(&req.body) {
            Ok(m) => m,
            Err(e) => return text(400, &format!("bad raft message batch: {e}\n")),
        };
        let appends = msgs
            .iter()
            .filter(|m| m.get_msg_type() == raft::eraftpb::MessageType::MsgAppend)
            .count();
        self.stats
            .received(msgs.len() as u64, appends as u64, req.body.len() as u64);
        for m in msgs {
            self.inbox.push(RaftInput::Peer(Box::new(m)));
        }
        Response::new(204)
    }
}

impl Handler for PeerApi {
    async fn handle(&self, req: Request) -> Response {
        let get = matches!(req.method, Method::Get | Method::Head);
        match (req.path.as_str(), get) {
            ("/members", true) => self.members(),
            ("/version", true) => Response::full(200, self.version_json.clone().into_bytes())
                .with_header("Content-Type", "application/json"),
            ("/raft/msgs" | "/raft/snapshot", false) if req.method == Method::Post => {
                self.raft(req)
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
