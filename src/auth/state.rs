//! The replicated auth state of etcd v2's security model (manual §5.5.2): users (name, bcrypt
//! password hash, role names), roles (read and write key patterns) and whether auth is on —
//! what etcd 2.3 keeps under `/2/users`, `/2/roles` and `/2/enabled` of its store. Every store
//! replica holds one [`AuthState`] and applies the same [`AuthChange`]s from the raft log, so
//! every member and shard enforces the same rules; it is part of the store's snapshots.
//!
//! Owns the records, the permission matching (etcd's `simpleMatch`/`prefixMatch`) and the
//! binary encoding of changes and state. Knows nothing about HTTP, JSON or passwords in clear.

use std::collections::BTreeMap;

use crate::codec::{self, DecodeError, Reader};

/// The user and role with every right; the root role exists without being stored.
pub const ROOT: &str = "root";
/// The role of requests without credentials.
pub const GUEST: &str = "guest";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub name: String,
    /// bcrypt hash of the password (never the password).
    pub password_hash: String,
    /// Role names, sorted, without duplicates.
    pub roles: Vec<String>,
}

/// Key patterns: a pattern ending in `*` matches every key with that prefix, any other only
/// itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KvPermissions {
    pub read: Vec<String>,
    pub write: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Role {
    pub name: String,
    pub kv: KvPermissions,
}

impl Role {
    /// The root role: everything, everywhere.
    pub fn root() -> Role {
        Role {
            name: ROOT.into(),
            kv: KvPermissions {
                read: vec!["/*".into()],
                write: vec!["/*".into()],
            },
        }
    }

    /// etcd's `Role.HasKeyAccess`: some pattern of the kind matches `key`.
    pub fn has_key_access(&self, key: &str, write: bool) -> bool {
        self.name == ROOT || self.patterns(write).iter().any(|p| simple_match(p, key))
    }

    /// etcd's `Role.HasRecursiveAccess`: some prefix pattern (`…*`) covers `key` and all below.
    pub fn has_recursive_access(&self, key: &str, write: bool) -> bool {
        self.name == ROOT || self.patterns(write).iter().any(|p| prefix_match(p, key))
    }

    fn patterns(&self, write: bool) -> &[String] {
        if write {
            &self.kv.write
        } else {
            &self.kv.read
        }
    }
}

fn simple_match(pattern: &str, key: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => !pattern.is_empty() && key == pattern,
    }
}

fn prefix_match(pattern: &str, key: &str) -> bool {
    pattern
        .strip_suffix('*')
        .is_some_and(|prefix| key.starts_with(prefix))
}

/// One replicated change. Creations fail when the record exists and updates when it does not
/// (checked when applied, so racing administrators get etcd's errors, not lost updates of a
/// record that vanished).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthChange {
    CreateUser(User),
    UpdateUser(User),
    DeleteUser(String),
    CreateRole(Role),
    UpdateRole(Role),
    DeleteRole(String),
    SetEnabled(bool),
}

/// Why a change did not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeError {
    Exists,
    Missing,
}

/// See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthState {
    pub enabled: bool,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
}

impl AuthState {
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// A stored role, or the built-in root role.
    pub fn role(&self, name: &str) -> Option<Role> {
        if name == ROOT {
            return Some(Role::root());
        }
        self.roles.get(name).cloned()
    }

    /// A stored role by reference (not the built-in root).
    pub fn stored_role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// Stored roles by name (root is not among them).
    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }

    /// The etcd store path the change writes (`/2/users/<name>`, `/2/roles/<name>`,
    /// `/2/enabled`): how the change shows in the store's bookkeeping.
    pub fn path_of(change: &AuthChange) -> String {
        match change {
            AuthChange::CreateUser(u) | AuthChange::UpdateUser(u) => format!("/2/users/{}", u.name),
            AuthChange::DeleteUser(n) => format!("/2/users/{n}"),
            AuthChange::CreateRole(r) | AuthChange::UpdateRole(r) => format!("/2/roles/{}", r.name),
            AuthChange::DeleteRole(n) => format!("/2/roles/{n}"),
            AuthChange::SetEnabled(_) => "/2/enabled".into(),
        }
    }

    pub fn apply(&mut self, change: &AuthChange) -> Result<(), ChangeError> {
        match change {
            AuthChange::CreateUser(u) => {
                if self.users.contains_key(&u.name) {
                    return Err(ChangeError::Exists);
                }
                self.users.insert(u.name.clone(), u.clone());
            }
            AuthChange::UpdateUser(u) => match self.users.get_mut(&u.name) {
                Some(slot) => *slot = u.clone(),
                None => return Err(ChangeError::Missing),
            },
            AuthChange::DeleteUser(n) => {
                self.users.remove(n).ok_or(ChangeError::Missing)?;
            }
            AuthChange::CreateRole(r) => {
                if self.roles.contains_key(&r.name) {
                    return Err(ChangeError::Exists);
                }
                self.roles.insert(r.name.clone(), r.clone());
            }
            AuthChange::UpdateRole(r) => match self.roles.get_mut(&r.name) {
                Some(slot) => *slot = r.clone(),
                None => return Err(ChangeError::Missing),
            },
            AuthChange::DeleteRole(n) => {
                self.roles.remove(n).ok_or(ChangeError::Missing)?;
            }
            AuthChange::SetEnabled(on) => self.enabled = *on,
        }
        Ok(())
    }
}

const TAG_CREATE_USER: u8 = 1;
const TAG_UPDATE_USER: u8 = 2;
const TAG_DELETE_USER: u8 = 3;
const TAG_CREATE_ROLE: u8 = 4;
const TAG_UPDATE_ROLE: u8 = 5;
const TAG_DELETE_ROLE: u8 = 6;
const TAG_SET_ENABLED: u8 = 7;

// Format (inside a store command or snapshot; integers little-endian, str = u32 length + UTF-8,
// list = u32 count + items):
//   user   = str name, str password_hash, list<str> roles
//   role   = str name, list<str> read, list<str> write
//   change = u8 tag, then: 1/2 user | 3 str name | 4/5 role | 6 str name | 7 bool enabled
//   state  = bool enabled, list<user>, list<role> (in name order)
fn put_list(out: &mut Vec<u8>, items: &[String]) {
    codec::put_len(out, items.len());
    for s in items {
        codec::put_str(out, s);
    }
}

fn list(r: &mut Reader<'_>) -> Result<Vec<String>, DecodeError> {
    (0..r.count(4)?).map(|_| r.string()).collect()
}

fn put_user(out: &mut Vec<u8>, u: &User) {
    codec::put_str(out, &u.name);
    codec::put_str(out, &u.password_hash);
    put_list(out, &u.roles);
}

fn user(r: &mut Reader<'_>) -> Result<User, DecodeError> {
    Ok(User {
        name: r.string()?,
        password_hash: r.string()?,
        roles: list(r)?,
    })
}

fn put_role(out: &mut Vec<u8>, role: &Role) {
    codec::put_str(out, &role.name);
    put_list(out, &role.kv.read);
    put_list(out, &role.kv.write);
}

fn role(r: &mut Reader<'_>) -> Result<Role, DecodeError> {
    Ok(Role {
        name: r.string()?,
        kv: KvPermissions {
            read: list(r)?,
            write: list(r)?,
        },
    })
}

impl AuthChange {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            AuthChange::CreateUser(u) => {
                codec::put_u8(out, TAG_CREATE_USER);
                put_user(out, u);
            }
            AuthChange::UpdateUser(u) => {
                codec::put_u8(out, TAG_UPDATE_USER);
                put_user(out, u);
            }
            AuthChange::DeleteUser(n) => {
                codec::put_u8(out, TAG_DELETE_USER);
                codec::put_str(out, n);
            }
            AuthChange::CreateRole(r) => {
                codec::put_u8(out, TAG_CREATE_ROLE);
                put_role(out, r);
            }
            AuthChange::UpdateRole(r) => {
                codec::put_u8(out, TAG_UPDATE_ROLE);
                put_role(out, r);
            }
            AuthChange::DeleteRole(n) => {
                codec::put_u8(out, TAG_DELETE_ROLE);
                codec::put_str(out, n);
            }
            AuthChange::SetEnabled(on) => {
                codec::put_u8(out, TAG_SET_ENABLED);
                codec::put_bool(out, *on);
            }
        }
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<AuthChange, DecodeError> {
        Ok(match r.u8()? {
            TAG_CREATE_USER => AuthChange::CreateUser(user(r)?),
            TAG_UPDATE_USER => AuthChange::UpdateUser(user(r)?),
            TAG_DELETE_USER => AuthChange::DeleteUser(r.string()?),
            TAG_CREATE_ROLE => AuthChange::CreateRole(role(r)?),
            TAG_UPDATE_ROLE => AuthChange::UpdateRole(role(r)?),
            TAG_DELETE_ROLE => AuthChange::DeleteRole(r.string()?),
            TAG_SET_ENABLED => AuthChange::SetEnabled(r.bool()?),
            tag => return Err(DecodeError::UnknownTag(tag)),
        })
    }
}

impl AuthState {
    pub fn encode(&self, out: &mut Vec<u8>) {
        codec::put_bool(out, self.enabled);
        codec::put_len(out, self.users.len());
        for u in self.users.values() {
            put_user(out, u);
        }
        codec::put_len(out, self.roles.len());
        for role in self.roles.values() {
            put_role(out, role);
        }
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<AuthState, DecodeError> {
        let enabled = r.bool()?;
        let mut state = AuthState {
            enabled,
            ..AuthState::default()
        };
        for _ in 0..r.count(12)? {
            let u = user(r)?;
            state.users.insert(u.name.clone(), u);
        }
        for _ in 0..r.count(12)? {
            let role = role(r)?;
            state.roles.insert(role.name.clone(), role);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, read: &[&str], write: &[&str]) -> Role {
        Role {
            name: name.into(),
            kv: KvPermissions {
                read: read.iter().map(|s| s.to_string()).collect(),
                write: write.iter().map(|s| s.to_string()).collect(),
            },
        }
    }

    #[test]
    fn patterns_match_like_etcd() {
        let r = role("r", &["/foo/*", "/exact", ""], &["/w*"]);
        assert!(r.has_key_access("/foo/bar", false));
        assert!(r.has_key_access("/foo/", false));
        assert!(
            !r.has_key_access("/foo", false),
            "/foo/* does not cover /foo"
        );
        assert!(r.has_key_access("/exact", false));
        assert!(!r.has_key_access("/exact/child", false));
        assert!(
            !r.has_key_access("/foo/bar", true),
            "read patterns give no write"
        );
        assert!(r.has_key_access("/wx", true));
        assert!(r.has_recursive_access("/foo/bar", false));
        assert!(
            !r.has_recursive_access("/exact", false),
            "only * patterns are recursive"
        );
        assert!(
            !r.has_key_access("", false),
            "an empty pattern matches nothing"
        );
        assert!(Role::root().has_key_access("/anything", true));
        let mut named_root = role(ROOT, &[], &[]);
        named_root.kv.read.clear();
        assert!(named_root.has_recursive_access("/x", true));
    }

    #[test]
    fn changes_apply_with_etcd_preconditions_and_round_trip() {
        let mut s = AuthState::default();
        let alice = User {
            name: "alice".into(),
            password_hash: "$2a$10$x".into(),
            roles: vec!["r".into()],
        };
        let changes = [
            AuthChange::CreateUser(alice.clone()),
            AuthChange::CreateRole(role("r", &["/a*"], &[])),
            AuthChange::UpdateRole(role("r", &["/a*"], &["/a*"])),
            AuthChange::SetEnabled(true),
        ];
        for c in &changes {
            s.apply(c).unwrap();
            let mut bytes = Vec::new();
            c.encode(&mut bytes);
            let mut r = Reader::new(&bytes);
            assert_eq!(&AuthChange::decode(&mut r).unwrap(), c);
            r.finish().unwrap();
        }
        assert_eq!(
            s.apply(&AuthChange::CreateUser(alice)),
            Err(ChangeError::Exists)
        );
        assert_eq!(
            s.apply(&AuthChange::DeleteRole("nope".into())),
            Err(ChangeError::Missing)
        );
        assert_eq!(
            s.apply(&AuthChange::UpdateUser(User::default())),
            Err(ChangeError::Missing)
        );
        let mut bytes = Vec::new();
        s.encode(&mut bytes);
        let mut r = Reader::new(&bytes);
        assert_eq!(AuthState::decode(&mut r).unwrap(), s);
        r.finish().unwrap();
        assert!(s.user("alice").is_some() && s.role("root").is_some() && s.enabled);
        s.apply(&AuthChange::DeleteUser("alice".into())).unwrap();
        assert!(s.user("alice").is_none());
    }
}
