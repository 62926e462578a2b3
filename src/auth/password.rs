//! Passwords: bcrypt hashes (cost 10, etcd's `bcrypt.DefaultCost`) made and checked on a
//! blocking thread so a shard never stalls for the ~50 ms one takes, and a per-shard cache of
//! verified credentials so an authenticated request costs a keyed SHA-256, not a bcrypt.
//!
//! etcd v2 runs bcrypt on every authenticated request. Here a verified (user, password) pair is
//! remembered as an HMAC of the password under a key random per process, together with the
//! stored hash it was checked against: when the user's hash changes (a new password, the user
//! deleted and re-created, on this member or any other) the entry no longer matches and the
//! password is checked again. Passwords themselves are never kept. At most [`CACHE_ENTRIES`]
//! entries; a full cache starts over. Failed checks are not cached.

use std::cell::RefCell;
use std::collections::HashMap;

use ring::hmac;
use ring::rand::SystemRandom;

use super::state::User;

/// etcd's bcrypt cost.
pub const COST: u32 = 10;
/// Most credentials a shard remembers.
pub const CACHE_ENTRIES: usize = 4096;

/// The bcrypt hash of `password`, computed off the executor thread.
pub async fn hash(password: String) -> Result<String, String> {
    glommio::executor()
        .spawn_blocking(move || bcrypt::hash(password, COST).map_err(|e| e.to_string()))
        .await
}

struct Verified {
    tag: hmac::Tag,
    hash: String,
}

/// One shard's credential checker (see the module documentation).
pub struct Verifier {
    key: hmac::Key,
    cache: RefCell<HashMap<String, Verified>>,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::new()
    }
}

impl Verifier {
    pub fn new() -> Verifier {
        Verifier {
            key: hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
                .expect("the system's random source"),
            cache: RefCell::new(HashMap::new()),
        }
    }

    fn tag(&self, password: &str) -> hmac::Tag {
        hmac::sign(&self.key, password.as_bytes())
    }

    /// A remembered verification of `password` for `user` as it is now, without bcrypt.
    pub fn cached(&self, user: &User, password: &str) -> bool {
        self.cache.borrow().get(&user.name).is_some_and(|v| {
            v.hash == user.password_hash && v.tag.as_ref() == self.tag(password).as_ref()
        })
    }

    /// Whether `password` is `user`'s: from the cache, else by bcrypt on a blocking thread.
    pub async fn check(&self, user: &User, password: &str) -> bool {
        if self.cached(user, password) {
            return true;
        }
        let (hash, given) = (user.password_hash.clone(), password.to_string());
        let ok = glommio::executor()
            .spawn_blocking(move || bcrypt::verify(given, &hash).unwrap_or(false))
            .await;
        if ok {
            let mut cache = self.cache.borrow_mut();
            if cache.len() >= CACHE_ENTRIES && !cache.contains_key(&user.name) {
                cache.clear();
            }
            cache.insert(
                user.name.clone(),
                Verified {
                    tag: self.tag(password),
                    hash: user.password_hash.clone(),
                },
            );
        }
        ok
    }

    /// Checks against `hash` synchronously (tests, and code that is off the executor already).
    pub fn verify_blocking(password: &str, hash: &str) -> bool {
        bcrypt::verify(password, hash).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_credentials_are_cached_until_the_hash_changes() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let v = Verifier::new();
                let mut alice = User {
                    name: "alice".into(),
                    password_hash: hash("secret".into()).await.unwrap(),
                    roles: vec![],
                };
                assert!(alice.password_hash.starts_with("$2"), "a bcrypt hash");
                assert!(!v.cached(&alice, "secret"));
                assert!(!v.check(&alice, "wrong").await);
                assert!(!v.cached(&alice, "wrong"), "failures are not cached");
                assert!(v.check(&alice, "secret").await);
                assert!(v.cached(&alice, "secret"));
                assert!(!v.cached(&alice, "secret2"));
                // A new password: the old one is not taken from the cache.
                alice.password_hash = hash("new".into()).await.unwrap();
                assert!(!v.cached(&alice, "secret"));
                assert!(!v.check(&alice, "secret").await);
                assert!(v.check(&alice, "new").await);
                // Odd passwords are just wrong, never a panic.
                assert!(!v.check(&alice, "").await);
                assert!(!v.check(&alice, &"x".repeat(1 << 20)).await);
                let broken = User {
                    password_hash: "not a hash".into(),
                    ..alice.clone()
                };
                assert!(!v.check(&broken, "new").await);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
