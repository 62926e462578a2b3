//! Member-list changes on the raft node: proposing them (validated first, and with
//! `--strict-reconfig-check` refused when they would leave too few started members), applying
//! them in log order, answering the shard that asked, publishing this member's name and client
//! URLs, and leaving when this member is removed.
//!
//! Adding and removing a member are raft conf changes (the member change rides in the conf
//! change's context); updating peer URLs and publishing attributes are normal entries.

use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, Entry};
use raft::StateRole;

use super::{PeerSender, RaftDriver};
use crate::cluster::membership::{MemberChange, MemberError};
use crate::shard::proposal::{self, Origin, Payload};
use crate::shard::ShardMsg;
use crate::wal::WalFs;

fn quorum(members: usize) -> usize {
    members / 2 + 1
}

/// How long a removed member goes on before it stops.
const LEAVE_AFTER: Duration = Duration::from_millis(500);

/// Ticks between two checks that this member's attributes are published.
const PUBLISH_RETRY_TICKS: u32 = 10;

impl<F: WalFs + Clone + 'static, P: PeerSender> RaftDriver<F, P> {
    /// Publishes the member list to every shard and points the transport at it.
    pub(super) fn members_changed(&mut self) {
        if self.members.is_empty() {
            let settings = self.settings.clone();
            self.transport.set_peers(
                settings
                    .join_peers
                    .iter()
                    .map(|m| (m.id, m.peer_urls.as_slice())),
            );
        } else {
            self.transport.set_peers(
                self.members
                    .members()
                    .map(|m| (m.id, m.peer_urls.as_slice())),
            );
        }
        self.shard.shared.set_membership(self.members.clone());
    }

    pub(super) fn answer_member_change(&self, origin: Origin, result: Result<(), MemberError>) {
        if !origin.is(self.member_id, usize::from(origin.shard)) {
            return;
        }
        let shard = usize::from(origin.shard);
        if shard == self.shard.id {
            self.shard.finish_member_change(origin.id, result);
        } else {
            self.shard.send_to(
                shard,
                ShardMsg::MembershipChanged {
                    id: origin.id,
                    result,
                },
            );
        }
    }

    /// etcd's `IsReadyToAddVotingMember` / `IsReadyToRemoveVotingMember`: a change must leave
    /// enough started members (those that published their name) for a quorum, and the peers
    /// this member can reach must still make a quorum.
    fn reconfig_allowed(&self, change: &MemberChange) -> bool {
        let started = |id: u64| self.members.get(id).is_some_and(|m| !m.name.is_empty());
        let reachable = |id: u64| id == self.member_id || self.transport.is_active(id);
        let ids = self.members.ids();
        match change {
            MemberChange::Add(_) => {
                let nstarted = ids.iter().filter(|id| started(**id)).count();
                let nmembers = ids.len() + 1;
                if nstarted == 1 && nmembers == 2 {
                    // A one-member cluster may always grow to two.
                    return true;
                }
                let nreachable = ids.iter().filter(|id| reachable(**id)).count();
                nstarted >= quorum(nmembers) && nreachable >= quorum(ids.len())
            }
            MemberChange::Remove(gone) => {
                let rest: Vec<u64> = ids.iter().copied().filter(|id| id != gone).collect();
                let nstarted = rest.iter().filter(|id| started(**id)).count();
                let nreachable = rest.iter().filter(|id| reachable(**id)).count();
                nstarted >= quorum(rest.len()) && nreachable >= quorum(rest.len())
            }
            _ => true,
        }
    }

    pub(super) fn propose_member_change(&mut self, origin: Origin, change: MemberChange) {
        if !self.leader_known() {
            // During an election: propose once a leader is known (the asker's timeout bounds
            // the wait).
            self.member_changes_waiting.push((origin, change));
            return;
        }
        if let Err(e) = self.members.check(&change) {
            self.answer_member_change(origin, Err(e));
            return;
        }
        if self.settings.strict_reconfig_check && !self.reconfig_allowed(&change) {
            self.answer_member_change(origin, Err(MemberError::NotEnoughStarted));
            return;
        }
        let mut context = Vec::new();
        proposal::encode_member(origin, &change, &mut context);
        let kind = match change {
            MemberChange::Add(_) => Some(ConfChangeType::AddNode),
            MemberChange::Remove(_) => Some(ConfChangeType::RemoveNode),
            _ => None,
        };
        let result = match kind {
            Some(kind) => {
                if self.node.raft.has_pending_conf() {
                    // raft-rs would turn it into an empty entry: nobody would ever answer.
                    self.answer_member_change(origin, Err(MemberError::Timeout));
                    return;
                }
                let mut cc = ConfChange::default();
                cc.set_change_type(kind);
                cc.node_id = change.member_id();
                cc.context = context.into();
                self.node.propose_conf_change(vec![], cc)
            }
            None => self.node.propose(vec![], context),
        };
        if result.is_err() {
            self.answer_member_change(origin, Err(MemberError::Timeout));
        }
    }

    /// A member change in a normal entry (peer URL update, published attributes).
    pub(super) fn apply_member_entry(&mut self, entry: &Entry) {
        match proposal::decode(&entry.data) {
            Ok((origin, Payload::Member(change))) => {
                let result = self.members.apply(&change);
                if result.is_ok() {
                    self.members_changed();
                }
                self.answer_member_change(origin, result);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("skipping undecodable member entry {}: {e}", entry.index),
        }
    }

    /// A conf change: applied to raft only when the member list accepts it, so every member
    /// refuses the same invalid change.
    pub(super) fn apply_conf_change(&mut self, entry: &Entry) {
        let Ok(cc) = ConfChange::parse_from_bytes(&entry.data) else {
            tracing::warn!("skipping undecodable conf change {}", entry.index);
            return;
        };
        if cc.context.is_empty() {
            // `--force-new-cluster`'s voter changes: the member list changed in its own entry.
            match self.node.apply_conf_change(&cc) {
                Ok(cs) => self.node.mut_store().mem.wl().set_conf_state(cs),
                Err(e) => tracing::warn!("raft conf change at {} refused: {e}", entry.index),
            }
            return;
        }
        let (origin, change) = match proposal::decode(&cc.context) {
            Ok((origin, Payload::Member(change))) => (origin, change),
            _ => {
                tracing::warn!(
                    "skipping conf change {} without a member change",
                    entry.index
                );
                return;
            }
        };
        let result = self.members.apply(&change);
        if result.is_ok() {
            match self.node.apply_conf_change(&cc) {
                Ok(cs) => self.node.mut_store().mem.wl().set_conf_state(cs),
                Err(e) => tracing::warn!("raft conf change at {} refused: {e}", entry.index),
            }
            self.members_changed();
            if let MemberChange::Add(m) = &change {
                tracing::info!(
                    "added member {} {:?} to the cluster",
                    crate::cluster::id_hex(m.id),
                    m.peer_urls
                );
            }
            if let MemberChange::Remove(id) = change {
                tracing::info!(
                    "removed member {} from the cluster",
                    crate::cluster::id_hex(id)
                );
                if id == self.member_id {
                    // raft-rs keeps a leader that removed itself leading, and panics on the
                    // next acknowledgement (its own progress is gone; found by the simulation,
                    // seed 256). Step down now: the others elect a leader among themselves.
                    if self.node.raft.state == StateRole::Leader {
                        let term = self.node.raft.term;
                        self.node.raft.become_follower(term, raft::INVALID_ID);
                    }
                    self.leave();
                }
            }
        }
        self.answer_member_change(origin, result);
    }

    /// This member was removed: answer what is in flight, then stop (etcd exits too) once
    /// the answer to the removal has left, and the other members have learned its commit from
    /// this one if it leads.
    fn leave(&mut self) {
        if self.leaving_at.is_none() {
            self.leaving_at = Some(self.env.clock.now() + LEAVE_AFTER);
        }
    }

    /// Once a leader is known, make sure the member list shows this member's name and client
    /// URLs as configured now (etcd publishes them on every start).
    pub(super) fn publish_if_needed(&mut self) {
        if self.publish_countdown > 0 {
            return;
        }
        if !self.leader_known() || self.node.raft.state == StateRole::PreCandidate {
            return;
        }
        let Some(me) = self.members.get(self.member_id) else {
            return;
        };
        if me.name == self.settings.name && me.client_urls == self.settings.client_urls {
            return;
        }
        let change = MemberChange::Publish {
            id: self.member_id,
            name: self.settings.name.clone(),
            client_urls: self.settings.client_urls.clone(),
        };
        let mut data = Vec::new();
        proposal::encode_member(Origin::NONE, &change, &mut data);
        let _ = self.node.propose(vec![], data);
        self.publish_countdown = PUBLISH_RETRY_TICKS;
    }
}
