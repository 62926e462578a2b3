//! Snapshot round trips and rejection of damaged snapshots.

use super::*;
use crate::store::DecodeError;

/// A store with nested dirs, TTLs on a file and a dir, hidden keys, a refresh and deletions.
fn populated() -> Replica {
    let mut store = Replica::new(4);
    ok(&mut store, set("/a/b/c", "1"));
    ok(&mut store, set_ttl("/a/ttl", "t", T0 + 10 * SECOND));
    ok(&mut store, set("/a/_hidden", "h"));
    ok(&mut store, mkdir("/empty"));
    let dir_ttl = Command::Update {
        key: "/a/b".into(),
        value: None,
        dir: true,
        expire_at: Some(T0 + 20 * SECOND),
        refresh: false,
    };
    ok(&mut store, dir_ttl);
    let refresh = Command::Set {
        key: "/a/ttl".into(),
        value: String::new(),
        dir: false,
        expire_at: Some(T0 + 30 * SECOND),
        refresh: true,
    };
    ok(&mut store, refresh);
    ok(&mut store, set("/gone/x", "1"));
    ok(&mut store, delete("/gone", false, true));
    ok(&mut store, set("/ünï/çødé", "\"quoted\" <&>"));
    store
}

#[test]
fn round_trip_keeps_tree_ttls_index_and_history() {
    let mut original = populated();
    let bytes = original.snapshot();
    let mut restored = Replica::restore(&bytes, 4).unwrap();
    assert_eq!(
        restored.snapshot(),
        bytes,
        "a restored replica snapshots to the same bytes"
    );
    assert_eq!(restored.index(), original.index());
    assert_eq!(restored.tree, original.tree);
    assert_eq!(restored.ttl, original.ttl);
    assert_eq!(restored.next_expiration(), Some(T0 + 20 * SECOND));
    for key in ["/", "/a", "/a/_hidden", "/a/ttl", "/ünï/çødé"] {
        assert_eq!(
            restored.get(key, true, true),
            original.get(key, true, true),
            "{key}"
        );
    }
    // The history came along: the same replays, including the refresh being skipped.
    let events = |replica: &Replica| -> Vec<Event> {
        let history = replica.store.published.history();
        history.events().map(|e| (**e).clone()).collect()
    };
    let (history, want) = (events(&restored), events(&original));
    assert_eq!(history, want);
    assert_eq!(history.len(), 4);
    let WatchStart::Ready(replayed) = restored.watch("/gone/x", false, false, Some(8)).unwrap()
    else {
        panic!()
    };
    assert_eq!(replayed.index(), 8);
    assert_eq!(
        restored.watch("/a", true, false, Some(5)).unwrap_err().code,
        Code::EventIndexCleared
    );
    // Both replicas go on identically, expiries included.
    for store in [&mut original, &mut restored] {
        store.apply(&Command::Sync {
            now: T0 + 25 * SECOND,
        });
        ok(store, set("/after", "1"));
    }
    assert_eq!(restored.snapshot(), original.snapshot());
    assert!(restored.get("/a/b", false, false).is_err());
}

#[test]
fn watchers_and_stats_are_not_kept() {
    let mut store = populated();
    store.watch("/x", false, false, None).unwrap();
    store.get("/a", false, false).unwrap();
    let restored = Replica::restore(&store.snapshot(), 1000).unwrap();
    assert_eq!(restored.watcher_count(), 0);
    assert_eq!(restored.stats(), crate::store::StoreStats::default());
}

#[test]
fn a_smaller_history_keeps_the_newest_events() {
    let original = populated();
    let restored = Replica::restore(&original.snapshot(), 2).unwrap();
    let indexes: Vec<u64> = restored
        .store
        .published
        .history()
        .events()
        .map(|e| e.index())
        .collect();
    assert_eq!(indexes, [8, 9]);
}

#[test]
fn empty_store_round_trips() {
    let store = Replica::new(1000);
    let bytes = store.snapshot();
    let restored = Replica::restore(&bytes, 1000).unwrap();
    assert_eq!(restored.snapshot(), bytes);
    assert_eq!(restored.index(), 0);
}

#[test]
fn damaged_snapshots_are_rejected() {
    let bytes = populated().snapshot();
    for len in 0..bytes.len() {
        assert!(
            Replica::restore(&bytes[..len], 10).is_err(),
            "prefix of {len} bytes"
        );
    }
    for at in 0..bytes.len() {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x40;
        assert!(Replica::restore(&flipped, 10).is_err(), "flipped byte {at}");
    }
    let mut wrong_version = bytes.clone();
    wrong_version[0] = 9;
    let body_len = wrong_version.len() - 4;
    let sum = crate::codec::checksum(&wrong_version[..body_len]).to_le_bytes();
    wrong_version[body_len..].copy_from_slice(&sum);
    assert_eq!(
        Replica::restore(&wrong_version, 10).unwrap_err(),
        DecodeError::UnsupportedVersion(9)
    );
}

/// Every walk over the tree, its views and its JSON uses explicit stacks: on a thread with a
/// small stack, a key thousands of levels deep survives set, get, JSON, snapshot, restore,
/// delete and expiry (with recursion, each level would cost far more than the 40 bytes it has).
#[test]
fn deep_keys_never_overflow_the_stack() {
    const DEPTH: usize = 3_000;
    const STACK_BYTES: usize = 128 * 1024;
    let worker = std::thread::Builder::new()
        .stack_size(STACK_BYTES)
        .spawn(|| {
            let mut store = Replica::new(10);
            let deep_key = "/d".repeat(DEPTH);
            ok(&mut store, set_ttl(&deep_key, "bottom", T0));
            let listing = store.get("/", true, true).unwrap();
            assert!(json(&listing, T0).contains("\"value\":\"bottom\""));
            drop(listing);
            let bytes = store.snapshot();
            let mut restored = Replica::restore(&bytes, 10).unwrap();
            assert_eq!(
                restored
                    .get(&deep_key, false, false)
                    .unwrap()
                    .node
                    .value
                    .as_deref(),
                Some("bottom")
            );
            assert_eq!(restored.snapshot(), bytes);
            restored.apply(&Command::Sync { now: T0 });
            assert!(restored.get(&deep_key, false, false).is_err());
            ok(&mut store, delete("/d", false, true));
            assert_eq!(
                store.get("/", false, false).unwrap().node.nodes,
                Some(Vec::new())
            );
        });
    worker.expect("spawn").join().expect("no stack overflow");
}

#[test]
fn auth_state_rides_in_the_snapshot_and_takes_indexes() {
    use crate::auth::state::{AuthChange, KvPermissions, Role, User};
    let mut store = populated();
    assert_eq!(store.snapshot()[0], 1, "no auth state: the old format");
    let before = store.index();
    let user = User {
        name: "alice".into(),
        password_hash: "$2a$10$hash".into(),
        roles: vec!["r".into()],
    };
    ok(
        &mut store,
        Command::Auth(AuthChange::CreateUser(user.clone())),
    );
    ok(
        &mut store,
        Command::Auth(AuthChange::CreateRole(Role {
            name: "r".into(),
            kv: KvPermissions {
                read: vec!["/a/*".into()],
                write: vec![],
            },
        })),
    );
    ok(&mut store, Command::Auth(AuthChange::SetEnabled(true)));
    assert_eq!(store.index(), before + 3, "each auth change takes an index");
    let failed = store.apply(&Command::Auth(AuthChange::CreateUser(user)));
    let err = failed.result.unwrap().unwrap_err();
    assert_eq!(
        (err.code as u32, err.cause.as_str()),
        (105, "/2/users/alice")
    );
    assert_eq!(store.index(), before + 3, "a failed change takes none");
    assert!(
        store.get("/2", true, false).is_err(),
        "auth records are not keys"
    );

    let bytes = store.snapshot();
    assert_eq!(bytes[0], 2);
    let restored = Replica::restore(&bytes, 4).unwrap();
    assert_eq!(restored.auth(), store.auth());
    assert_eq!(restored.snapshot(), bytes);
}
