//! The replicated member list: who is in the cluster, with which names and URLs, and who was
//! removed for good.
//!
//! Every member applies the same [`MemberChange`]s in raft order, so every member holds the same
//! list. A change is validated when it is applied ([`Membership::check`]), deterministically, so a
//! change that became invalid between proposal and commit (two concurrent adds of one URL) is
//! refused the same way everywhere. Removed IDs are remembered: a removed member may never come
//! back under its old ID. Knows nothing about raft or sockets; encodes itself for snapshots and
//! raft entries.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::Member;
use crate::codec::{self, DecodeError, Reader};

/// One change to the member list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// A new voter (`POST /v2/members`, or a bootstrap member). Its name and client URLs are
    /// empty until it publishes them.
    Add(Member),
    /// `DELETE /v2/members/<id>`.
    Remove(u64),
    /// `PUT /v2/members/<id>`: new peer URLs.
    UpdatePeers { id: u64, peer_urls: Vec<String> },
    /// A started member announces its name and client URLs.
    Publish {
        id: u64,
        name: String,
        client_urls: Vec<String>,
    },
    /// `--force-new-cluster`: this member alone; every other one is removed for good.
    ForceNewCluster(Member),
}

/// Why a change is refused; the members API maps these to etcd's answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberError {
    IdExists,
    PeerUrlExists,
    IdNotFound,
    IdRemoved,
    /// `--strict-reconfig-check`: the change would leave too few started members for a quorum.
    NotEnoughStarted,
    /// Raft did not apply the change in time (no leader, lost quorum).
    Timeout,
}

impl fmt::Display for MemberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemberError::IdExists => "etcdserver: member ID already exist",
            MemberError::PeerUrlExists => "etcdserver: Peer URLs already exists",
            MemberError::IdNotFound => "etcdserver: member not found",
            MemberError::IdRemoved => "etcdserver: member was removed",
            MemberError::NotEnoughStarted => {
                "etcdserver: re-configuration failed due to not enough started members"
            }
            MemberError::Timeout => "etcdserver: request timed out",
        })
    }
}

/// The member list and the IDs removed from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    members: BTreeMap<u64, Member>,
    removed: BTreeSet<u64>,
}

impl Membership {
    /// Members in ID order (the order `/v2/members` lists them in).
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn get(&self, id: u64) -> Option<&Member> {
        self.members.get(&id)
    }

    pub fn ids(&self) -> Vec<u64> {
        self.members.keys().copied().collect()
    }

    pub fn is_removed(&self, id: u64) -> bool {
        self.removed.contains(&id)
    }

    /// The member that advertises `url` as a peer URL, if any.
    pub fn by_peer_url(&self, url: &str) -> Option<&Member> {
        self.members
            .values()
            .find(|m| m.peer_urls.iter().any(|u| u == url))
    }

    /// Whether `change` may be applied to the list as it is now.
    pub fn check(&self, change: &MemberChange) -> Result<(), MemberError> {
        match change {
            MemberChange::Add(m) => {
                // A URL already in use is the error a user can act on (an ID derived from the
                // same URLs at the same second would collide too).
                let taken = self
                    .members
                    .values()
                    .any(|o| o.peer_urls.iter().any(|u| m.peer_urls.contains(u)));
                if taken {
                    return Err(MemberError::PeerUrlExists);
                }
                if self.removed.contains(&m.id) {
                    return Err(MemberError::IdRemoved);
                }
                if self.members.contains_key(&m.id) {
                    return Err(MemberError::IdExists);
                }
                Ok(())
            }
            MemberChange::Remove(id) => self.check_present(*id),
            MemberChange::UpdatePeers { id, peer_urls } => {
                self.check_present(*id)?;
                self.check_urls_free(*id, peer_urls)
            }
            MemberChange::Publish { id, .. } => self.check_present(*id),
            MemberChange::ForceNewCluster(_) => Ok(()),
        }
    }

    fn check_present(&self, id: u64) -> Result<(), MemberError> {
        if self.removed.contains(&id) {
            Err(MemberError::IdRemoved)
        } else if !self.members.contains_key(&id) {
            Err(MemberError::IdNotFound)
        } else {
            Ok(())
        }
    }

    fn check_urls_free(&self, id: u64, urls: &[String]) -> Result<(), MemberError> {
        let taken = self
            .members
            .values()
            .filter(|m| m.id != id)
            .any(|m| m.peer_urls.iter().any(|u| urls.contains(u)));
        if taken {
            Err(MemberError::PeerUrlExists)
        } else {
            Ok(())
        }
    }

    /// Validates and applies `change`; on error nothing changes.
    pub fn apply(&mut self, change: &MemberChange) -> Result<(), MemberError> {
        self.check(change)?;
        match change {
            MemberChange::Add(m) => {
                let mut m = m.clone();
                m.peer_urls.sort();
                self.members.insert(m.id, m);
            }
            MemberChange::Remove(id) => {
                self.members.remove(id);
                self.removed.insert(*id);
            }
            MemberChange::UpdatePeers { id, peer_urls } => {
                if let Some(m) = self.members.get_mut(id) {
                    m.peer_urls = peer_urls.clone();
                    m.peer_urls.sort();
                }
            }
            MemberChange::Publish {
                id,
                name,
                client_urls,
            } => {
                if let Some(m) = self.members.get_mut(id) {
                    m.name = name.clone();
                    m.client_urls = client_urls.clone();
                }
            }
            MemberChange::ForceNewCluster(me) => {
                let others: Vec<u64> = self
                    .members
                    .keys()
                    .copied()
                    .filter(|id| *id != me.id)
                    .collect();
                self.removed.extend(others);
                self.removed.remove(&me.id);
                let mut me = me.clone();
                me.peer_urls.sort();
                self.members = BTreeMap::from([(me.id, me)]);
            }
        }
        Ok(())
    }

    // Format (version 1): [u8 1][u32 n][member]*[u32 m][u64 removed id]*
    pub fn encode(&self, out: &mut Vec<u8>) {
        codec::put_u8(out, 1);
        codec::put_len(out, self.members.len());
        for m in self.members.values() {
            encode_member(out, m);
        }
        codec::put_len(out, self.removed.len());
        for id in &self.removed {
            codec::put_u64(out, *id);
        }
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Membership, DecodeError> {
        let version = r.u8()?;
        if version != 1 {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let mut ms = Membership::default();
        for _ in 0..r.count(8)? {
            let m = decode_member(r)?;
            ms.members.insert(m.id, m);
        }
        for _ in 0..r.count(8)? {
            ms.removed.insert(r.u64()?);
        }
        Ok(ms)
    }
}

fn encode_strings(out: &mut Vec<u8>, items: &[String]) {
    codec::put_len(out, items.len());
    for s in items {
        codec::put_str(out, s);
    }
}

fn decode_strings(r: &mut Reader<'_>) -> Result<Vec<String>, DecodeError> {
    let n = r.count(4)?;
    (0..n).map(|_| r.string()).collect()
}

fn encode_member(out: &mut Vec<u8>, m: &Member) {
    codec::put_u64(out, m.id);
    codec::put_str(out, &m.name);
    encode_strings(out, &m.peer_urls);
    encode_strings(out, &m.client_urls);
}

fn decode_member(r: &mut Reader<'_>) -> Result<Member, DecodeError> {
    Ok(Member {
        id: r.u64()?,
        name: r.string()?,
        peer_urls: decode_strings(r)?,
        client_urls: decode_strings(r)?,
    })
}

const TAG_ADD: u8 = 1;
const TAG_REMOVE: u8 = 2;
const TAG_UPDATE: u8 = 3;
const TAG_PUBLISH: u8 = 4;
const TAG_FORCE_NEW_CLUSTER: u8 = 5;

impl MemberChange {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            MemberChange::Add(m) => {
                codec::put_u8(out, TAG_ADD);
                encode_member(out, m);
            }
            MemberChange::Remove(id) => {
                codec::put_u8(out, TAG_REMOVE);
                codec::put_u64(out, *id);
            }
            MemberChange::UpdatePeers { id, peer_urls } => {
                codec::put_u8(out, TAG_UPDATE);
                codec::put_u64(out, *id);
                encode_strings(out, peer_urls);
            }
            MemberChange::Publish {
                id,
                name,
                client_urls,
            } => {
                codec::put_u8(out, TAG_PUBLISH);
                codec::put_u64(out, *id);
                codec::put_str(out, name);
                encode_strings(out, client_urls);
            }
            MemberChange::ForceNewCluster(m) => {
                codec::put_u8(out, TAG_FORCE_NEW_CLUSTER);
                encode_member(out, m);
            }
        }
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<MemberChange, DecodeError> {
        Ok(match r.u8()? {
            TAG_ADD => MemberChange::Add(decode_member(r)?),
            TAG_REMOVE => MemberChange::Remove(r.u64()?),
            TAG_UPDATE => MemberChange::UpdatePeers {
                id: r.u64()?,
                peer_urls: decode_strings(r)?,
            },
            TAG_PUBLISH => MemberChange::Publish {
                id: r.u64()?,
                name: r.string()?,
                client_urls: decode_strings(r)?,
            },
            TAG_FORCE_NEW_CLUSTER => MemberChange::ForceNewCluster(decode_member(r)?),
            tag => return Err(DecodeError::UnknownTag(tag)),
        })
    }

    /// The member the change is about.
    pub fn member_id(&self) -> u64 {
        match self {
            MemberChange::Add(m) | MemberChange::ForceNewCluster(m) => m.id,
            MemberChange::Remove(id)
            | MemberChange::UpdatePeers { id, .. }
            | MemberChange::Publish { id, .. } => *id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, url: &str) -> Member {
        Member {
            id,
            name: String::new(),
            peer_urls: vec![url.to_string()],
            client_urls: vec![],
        }
    }

    #[test]
    fn add_remove_update_publish() {
        let mut ms = Membership::default();
        ms.apply(&MemberChange::Add(member(1, "http://a:2380")))
            .unwrap();
        ms.apply(&MemberChange::Add(member(2, "http://b:2380")))
            .unwrap();
        assert_eq!(
            ms.apply(&MemberChange::Add(member(1, "http://c:2380"))),
            Err(MemberError::IdExists)
        );
        assert_eq!(
            ms.apply(&MemberChange::Add(member(1, "http://a:2380"))),
            Err(MemberError::PeerUrlExists)
        );
        assert_eq!(
            ms.apply(&MemberChange::Add(member(3, "http://a:2380"))),
            Err(MemberError::PeerUrlExists)
        );
        ms.apply(&MemberChange::Publish {
            id: 2,
            name: "b".into(),
            client_urls: vec!["http://b:2379".into()],
        })
        .unwrap();
        assert_eq!(ms.get(2).unwrap().name, "b");
        assert_eq!(
            ms.apply(&MemberChange::UpdatePeers {
                id: 2,
                peer_urls: vec!["http://a:2380".into()]
            }),
            Err(MemberError::PeerUrlExists)
        );
        ms.apply(&MemberChange::UpdatePeers {
            id: 2,
            peer_urls: vec!["http://b2:2380".into()],
        })
        .unwrap();
        assert_eq!(ms.by_peer_url("http://b2:2380").unwrap().id, 2);
        ms.apply(&MemberChange::Remove(2)).unwrap();
        assert!(ms.is_removed(2));
        assert_eq!(ms.ids(), vec![1]);
        assert_eq!(
            ms.apply(&MemberChange::Remove(2)),
            Err(MemberError::IdRemoved)
        );
        assert_eq!(
            ms.apply(&MemberChange::Add(member(2, "http://z:1"))),
            Err(MemberError::IdRemoved)
        );
        assert_eq!(
            ms.apply(&MemberChange::Remove(9)),
            Err(MemberError::IdNotFound)
        );
    }

    #[test]
    fn force_new_cluster_keeps_only_this_member() {
        let mut ms = Membership::default();
        for (id, url) in [(1, "http://a:1"), (2, "http://b:1"), (3, "http://c:1")] {
            ms.apply(&MemberChange::Add(member(id, url))).unwrap();
        }
        // A backup's new ID may reuse an old member's peer URL.
        ms.apply(&MemberChange::ForceNewCluster(member(7, "http://a:1")))
            .unwrap();
        assert_eq!(ms.ids(), vec![7]);
        assert!(ms.is_removed(1) && ms.is_removed(2) && ms.is_removed(3));
        assert!(!ms.is_removed(7));
    }

    #[test]
    fn encodings_round_trip_and_refuse_truncation() {
        let mut ms = Membership::default();
        ms.apply(&MemberChange::Add(member(1, "http://a:2380")))
            .unwrap();
        ms.apply(&MemberChange::Add(member(5, "http://e:2380")))
            .unwrap();
        ms.apply(&MemberChange::Remove(5)).unwrap();
        let mut out = Vec::new();
        ms.encode(&mut out);
        let mut r = Reader::new(&out);
        assert_eq!(Membership::decode(&mut r).unwrap(), ms);
        r.finish().unwrap();
        for cut in 0..out.len() {
            assert!(Membership::decode(&mut Reader::new(&out[..cut])).is_err());
        }

        let changes = [
            MemberChange::Add(member(3, "http://c:1")),
            MemberChange::Remove(3),
            MemberChange::UpdatePeers {
                id: 3,
                peer_urls: vec!["http://x:1".into(), "http://y:1".into()],
            },
            MemberChange::Publish {
                id: 3,
                name: "n".into(),
                client_urls: vec!["http://c:2379".into()],
            },
            MemberChange::ForceNewCluster(member(9, "http://z:1")),
        ];
        for c in changes {
            let mut out = Vec::new();
            c.encode(&mut out);
            let mut r = Reader::new(&out);
            assert_eq!(MemberChange::decode(&mut r).unwrap(), c);
            r.finish().unwrap();
        }
    }
}
