//! Every operation and every semantic error: results, causes, indexes and stats as etcd gives.

use super::*;
use crate::store::{Action, StoreStats};

#[test]
fn set_creates_missing_parents_at_the_new_index() {
    let mut store = Replica::new(1000);
    let event = ok(&mut store, set("a//b/./c/", "v"));
    assert_eq!(
        (
            event.action,
            event.node.key.as_str(),
            event.node.value.as_deref()
        ),
        (Action::Set, "/a/b/c", Some("v"))
    );
    assert!(event.prev_node.is_none());
    let parent = store.get("/a/b", false, false).unwrap();
    assert!(parent.node.dir);
    assert_eq!(
        (parent.node.created_index, parent.node.modified_index),
        (1, 1)
    );
    assert_eq!(store.index(), 1);
}

#[test]
fn set_replaces_files_but_never_directories() {
    let mut store = Replica::new(1000);
    ok(&mut store, set("/foo", "bar"));
    // A directory may replace a file (prevNode is the file)...
    let dir = ok(&mut store, mkdir("/foo"));
    assert!(dir.node.dir && dir.node.value.is_none());
    assert_eq!(
        dir.prev_node.as_ref().unwrap().value.as_deref(),
        Some("bar")
    );
    // ...but nothing replaces a directory, not even another directory.
    assert_error(
        &fails(&mut store, set("/foo", "x")),
        Code::NotFile,
        "/foo",
        2,
    );
    assert_error(&fails(&mut store, mkdir("/foo")), Code::NotFile, "/foo", 2);
    assert_error(
        &fails(&mut store, set("/", "x")),
        Code::RootReadOnly,
        "/",
        2,
    );
}

#[test]
fn a_file_on_the_way_is_not_a_directory() {
    let mut store = Replica::new(1000);
    ok(&mut store, set("/k", "v"));
    assert_error(
        &fails(&mut store, set("/k/sub", "1")),
        Code::NotDir,
        "/k",
        1,
    );
    assert_error(
        &fails(&mut store, create("/k/sub/x", "1")),
        Code::NotDir,
        "/k",
        1,
    );
    assert_error(
        &store.get("/k/sub", false, false).unwrap_err(),
        Code::NotDir,
        "/k",
        1,
    );
    assert_error(
        &fails(&mut store, cas("/k/sub", "1", Some("x"), None)),
        Code::NotDir,
        "/k",
        1,
    );
    assert_error(
        &fails(&mut store, delete("/k/sub", false, false)),
        Code::NotDir,
        "/k",
        1,
    );
}

#[test]
fn create_refuses_existing_nodes() {
    let mut store = Replica::new(1000);
    ok(&mut store, set("/d/e", "1"));
    let created = ok(&mut store, create("/new", "v"));
    assert_eq!(
        (created.action, created.node.modified_index),
        (Action::Create, 2)
    );
    assert_error(
        &fails(&mut store, create("/d", "v")),
        Code::NodeExist,
        "/d",
        2,
    );
    assert_error(
        &fails(&mut store, create("/d/e", "v")),
        Code::NodeExist,
        "/d/e",
        2,
    );
    let dir = Command::Create {
        key: "/d".into(),
        value: String::new(),
        dir: true,
        expire_at: None,
        unique: false,
    };
    assert_error(&fails(&mut store, dir), Code::NodeExist, "/d", 2);
    assert_error(
        &fails(&mut store, create("/", "v")),
        Code::RootReadOnly,
        "/",
        2,
    );
}

#[test]
fn unique_create_names_the_key_after_the_new_index() {
    let mut store = Replica::new(1000);
    ok(&mut store, set("/x", "1"));
    let post = |key: &str, value: &str| Command::Create {
        key: key.into(),
        value: value.into(),
        dir: false,
        expire_at: None,
        unique: true,
    };
    let first = ok(&mut store, post("/q", "a"));
    let second = ok(&mut store, post("/q/", "b"));
    assert_eq!(first.node.key, "/q/00000000000000000002");
    assert_eq!(second.node.key, "/q/00000000000000000003");
    assert_eq!(
        listed_keys(&store.get("/q", false, false).unwrap()),
        [first.node.key.clone(), second.node.key.clone()]
    );
    assert_eq!(
        ok(&mut store, post("/", "c")).node.key,
        "/00000000000000000004"
    );
    assert_error(&fails(&mut store, post("/x", "c")), Code::NotDir, "/x", 4);
}

#[test]
fn update_changes_value_and_ttl_but_not_created_index() {
    let mut store = Replica::new(1000);
    ok(&mut store, set_ttl("/k", "v1", T0 + 100 * SECOND));
    let updated = ok(&mut store, update("/k", "v2"));
    assert_eq!(updated.action, Action::Update);
    assert_eq!(
        (
            updated.node.value.as_deref(),
            updated.node.modified_index,
            updated.node.created_index
        ),
        (Some("v2"), 2, 1)
    );
    // expire_at None makes the key permanent: no expiry later.
    assert_eq!(updated.node.expire_at, None);
    assert_eq!(
        updated.prev_node.as_ref().unwrap().expire_at,
        Some(T0 + 100 * SECOND)
    );
    assert!(!store.has_ttl_keys());
    assert!(store
        .apply(&Command::Sync {
            now: T0 + 200 * SECOND
        })
        .fired
        .is_empty());
    assert_eq!(store.index(), 2);
    // No value means an empty value, as etcd's form default.
    let no_value = Command::Update {
        key: "/k".into(),
        value: None,
        dir: false,
        expire_at: None,
        refresh: false,
    };
    assert_eq!(ok(&mut store, no_value).node.value.as_deref(), Some(""));
}

#[test]
fn update_errors() {
    let mut store = Replica::new(1000);
    ok(&mut store, mkdir("/d"));
    assert_error(
        &fails(&mut store, update("/nokey", "1")),
        Code::KeyNotFound,
        "/nokey",
        1,
    );
    assert_error(
        &fails(&mut store, update("/d", "1")),
        Code::NotFile,
        "/d",
        1,
    );
    assert_error(
        &fails(&mut store, update("/", "")),
        Code::RootReadOnly,
        "/",
        1,
    );
}

#[test]
fn refresh_keeps_the_value_and_only_moves_the_ttl() {
    let mut store = Replica::new(1000);
    ok(&mut store, set_ttl("/k", "v1", T0 + 100 * SECOND));
    let refreshed = Command::Set {
        key: "/k".into(),
        value: String::new(),
        dir: false,
        expire_at: Some(T0 + 200 * SECOND),
        refresh: true,
    };
    let event = ok(&mut store, refreshed);
    assert_eq!(
        (
            event.node.value.as_deref(),
            event.node.expire_at,
            event.node.created_index
        ),
        (Some("v1"), Some(T0 + 200 * SECOND), 2)
    );
    assert!(event.refresh);
    assert_eq!(
        event.prev_node.as_ref().unwrap().expire_at,
        Some(T0 + 100 * SECOND)
    );

    let refresh_update = Command::Update {
        key: "/k".into(),
        value: None,
        dir: false,
        expire_at: Some(T0 + 300 * SECOND),
        refresh: true,
    };
    let event = ok(&mut store, refresh_update);
    assert_eq!(
        (
            event.action,
            event.node.value.as_deref(),
            event.node.created_index
        ),
        (Action::Update, Some("v1"), 2)
    );

    let refresh_cas = Command::CompareAndSwap {
        key: "/k".into(),
        value: String::new(),
        prev_value: Some("v1".into()),
        prev_index: None,
        expire_at: Some(T0 + 400 * SECOND),
        refresh: true,
    };
    let event = ok(&mut store, refresh_cas);
    assert_eq!(
        (
            event.action,
            event.node.value.as_deref(),
            event.node.modified_index
        ),
        (Action::CompareAndSwap, Some("v1"), 4)
    );
    assert_eq!(store.next_expiration(), Some(T0 + 400 * SECOND));

    // Refreshing a missing key is 100 KeyNotFound; refreshing a directory with set is 102.
    let missing = Command::Set {
        key: "/zz".into(),
        value: String::new(),
        dir: false,
        expire_at: Some(T0),
        refresh: true,
    };
    assert_error(&fails(&mut store, missing), Code::KeyNotFound, "/zz", 4);
    ok(&mut store, mkdir("/d"));
    let on_dir = Command::Set {
        key: "/d".into(),
        value: String::new(),
        dir: true,
        expire_at: Some(T0),
        refresh: true,
    };
    assert_error(&fails(&mut store, on_dir), Code::NotFile, "/d", 5);
}

#[test]
fn compare_and_swap_tests_value_and_index() {
    let mut store = Replica::new(1000);
    ok(&mut store, set("/k", "old"));
    assert_error(
        &fails(&mut store, cas("/k", "new", Some("x"), None)),
        Code::TestFailed,
        "[x != old]",
        1,
    );
    assert_error(
        &fails(&mut store, cas("/k", "new", None, Some(5))),
        Code::TestFailed,
        "[5 != 1]",
        1,
    );
    assert_error(
        &fails(&mut store, cas("/k", "new", Some("x"), Some(5))),
        Code::TestFailed,
        "[x != old] [5 != 1]",
        1,
    );
    // Empty value and zero index are "not given".
    let event = ok(&mut store, cas("/k", "new", Some(""), Some(0)));
    assert_eq!(
        (
            event.action,
            event.node.value.as_deref(),
            event.node.modified_index,
            event.node.created_index
        ),
        (Action::CompareAndSwap, Some("new"), 2, 1)
    );
    assert_eq!(
        event.prev_node.as_ref().unwrap().value.as_deref(),
        Some("old")
    );
    ok(&mut store, cas("/k", "newer", Some("new"), Some(2)));
    assert_error(
        &fails(&mut store, cas("/nokey", "1", Some("x"), None)),
        Code::KeyNotFound,
        "/nokey",
        3,
    );
    ok(&mut store, mkdir("/d"));
    assert_error(
        &fails(&mut store, cas("/d", "1", Some("x"), None)),
        Code::NotFile,
        "/d",
        4,
    );
    assert_error(
        &fails(&mut store, cas("/", "1", Some("x"), None)),
        Code::RootReadOnly,
        "/",
        4,
    );
}

#[test]
fn compare_and_delete_tests_then_removes_a_file() {
    let mut store = Replica::new(1000);
    ok(&mut store, set("/k", "v"));
    ok(&mut store, mkdir("/d"));
    assert_error(
        &fails(&mut store, cad("/k", Some("x"), None)),
        Code::TestFailed,
        "[x != v]",
        2,
    );
    assert_error(
        &fails(&mut store, cad("/k", Some("x"), Some(9))),
        Code::TestFailed,
        "[x != v] [9 != 1]",
        2,
    );
    assert_error(
        &fails(&mut store, cad("/d", Some("x"), None)),
        Code::NotFile,
        "/d",
        2,
    );
    // etcd's refusal of a compare-and-delete of the root has no cause.
    assert_error(
        &fails(&mut store, cad("/", Some("x"), None)),
        Code::NotFile,
        "",
        2,
    );
    assert_error(
        &fails(&mut store, cad("/nokey", Some("x"), None)),
        Code::KeyNotFound,
        "/nokey",
        2,
    );
    let event = ok(&mut store, cad("/k", Some("v"), Some(1)));
    assert_eq!(
        (
            event.action,
            event.node.value.as_deref(),
            event.node.modified_index
        ),
        (Action::CompareAndDelete, None, 3)
    );
    assert_error(
        &store.get("/k", false, false).unwrap_err(),
        Code::KeyNotFound,
        "/k",
        3,
    );
}

#[test]
fn delete_files_empty_dirs_and_trees() {
    let mut store = Replica::new(1000);
    ok(&mut store, set("/d/e/f", "1"));
    ok(&mut store, mkdir("/empty"));
    ok(&mut store, set("/file", "1"));
    assert_error(
        &fails(&mut store, delete("/d", false, false)),
        Code::NotFile,
        "/d",
        3,
    );
    assert_error(
        &fails(&mut store, delete("/d", true, false)),
        Code::DirNotEmpty,
        "/d",
        3,
    );
    assert_error(
        &fails(&mut store, delete("/", true, true)),
        Code::RootReadOnly,
        "/",
        3,
    );
    assert_error(
        &fails(&mut store, delete("/nokey", false, false)),
        Code::KeyNotFound,
        "/nokey",
        3,
    );
    assert!(ok(&mut store, delete("/empty", true, false)).node.dir);
    // dir=true also deletes a file.
    assert!(!ok(&mut store, delete("/file", true, false)).node.dir);
    let tree = ok(&mut store, delete("/d", false, true));
    assert_eq!((tree.node.modified_index, tree.node.created_index), (6, 1));
    assert_eq!(
        listed_keys(&store.get("/", true, true).unwrap()),
        Vec::<String>::new()
    );
}

#[test]
fn get_lists_visible_children_and_reads_hidden_keys_directly() {
    let mut store = Replica::new(1000);
    ok(&mut store, set("/d/_h", "hid"));
    ok(&mut store, set("/d/v", "vis"));
    ok(&mut store, set("/_top/x", "1"));
    assert_eq!(
        listed_keys(&store.get("/d", false, false).unwrap()),
        ["/d/v"]
    );
    assert_eq!(listed_keys(&store.get("/", true, true).unwrap()), ["/d"]);
    assert_eq!(
        store
            .get("/d/_h", false, false)
            .unwrap()
            .node
            .value
            .as_deref(),
        Some("hid")
    );
    assert_eq!(
        listed_keys(&store.get("/_top", false, false).unwrap()),
        ["/_top/x"]
    );
    assert_error(
        &store.get("/d/nope/x", false, false).unwrap_err(),
        Code::KeyNotFound,
        "/d/nope",
        3,
    );
    let empty_dir = ok(&mut store, mkdir("/e"));
    assert!(empty_dir.node.nodes.is_none());
    assert_eq!(
        store.get("/e", false, false).unwrap().node.nodes,
        Some(Vec::new())
    );
}

#[test]
fn sync_expires_in_time_order_then_key_order() {
    let mut store = Replica::new(1000);
    ok(&mut store, set_ttl("/late", "1", T0 + 3 * SECOND));
    ok(&mut store, set_ttl("/b", "1", T0 + SECOND));
    ok(&mut store, set_ttl("/a", "1", T0 + SECOND));
    ok(&mut store, set("/permanent", "1"));
    assert_eq!(store.next_expiration(), Some(T0 + SECOND));
    assert!(store
        .apply(&Command::Sync {
            now: T0 + SECOND - 1
        })
        .fired
        .is_empty());
    assert_eq!(store.index(), 4);
    let WatchStart::Waiting(_) = store.watch("/", true, true, None).unwrap() else {
        panic!()
    };
    let fired = store.apply(&Command::Sync { now: T0 + SECOND }).fired;
    let expired: Vec<(&str, u64)> = fired
        .iter()
        .map(|(_, e)| (e.node.key.as_str(), e.node.modified_index))
        .collect();
    assert_eq!(expired, [("/a", 5), ("/b", 6)]);
    assert!(fired.iter().all(|(_, e)| e.action == Action::Expire));
    assert_eq!(store.index(), 6);
    assert_eq!(store.next_expiration(), Some(T0 + 3 * SECOND));
    assert_eq!(
        listed_keys(&store.get("/", false, false).unwrap()),
        ["/late", "/permanent"]
    );
    assert_eq!(store.stats().expire_count, 2);
}

#[test]
fn expiring_a_dir_removes_its_subtree_and_their_ttls() {
    let mut store = Replica::new(1000);
    ok(&mut store, set_ttl("/d/child", "1", T0 + 10 * SECOND));
    let dir_ttl = Command::Update {
        key: "/d".into(),
        value: None,
        dir: true,
        expire_at: Some(T0 + SECOND),
        refresh: false,
    };
    ok(&mut store, dir_ttl);
    store.apply(&Command::Sync { now: T0 + SECOND });
    assert_eq!(store.index(), 3);
    assert!(store.get("/d", false, false).is_err());
    assert_eq!(store.next_expiration(), None);
    assert!(store
        .apply(&Command::Sync {
            now: T0 + 20 * SECOND
        })
        .fired
        .is_empty());
    assert_eq!(store.index(), 3);
}

#[test]
fn replacing_or_deleting_a_node_drops_its_expiration() {
    let mut store = Replica::new(1000);
    ok(&mut store, set_ttl("/replaced", "1", T0 + SECOND));
    ok(&mut store, set("/replaced", "2"));
    ok(&mut store, set_ttl("/deleted", "1", T0 + SECOND));
    ok(&mut store, delete("/deleted", false, false));
    ok(&mut store, set_ttl("/tree/x", "1", T0 + SECOND));
    ok(&mut store, delete("/tree", false, true));
    assert!(!store.has_ttl_keys());
    store.apply(&Command::Sync {
        now: T0 + 5 * SECOND,
    });
    assert_eq!(store.index(), 6);
    assert_eq!(
        store
            .get("/replaced", false, false)
            .unwrap()
            .node
            .value
            .as_deref(),
        Some("2")
    );
}

#[test]
fn expirations_before_2000_mean_permanent_on_create() {
    let mut store = Replica::new(1000);
    let event = ok(&mut store, set_ttl("/k", "v", 1));
    assert_eq!(event.node.expire_at, None);
    assert!(!store.has_ttl_keys());
}

#[test]
fn stats_count_like_etcd() {
    let mut store = Replica::new(1000);
    ok(&mut store, set("/k", "v"));
    fails(&mut store, set("/k/x", "v"));
    // A create that meets a file on its way counts as a failed set too (etcd's internalCreate).
    fails(&mut store, create("/k/x", "v"));
    fails(&mut store, create("/k", "v"));
    ok(&mut store, create("/c", "v"));
    ok(&mut store, update("/k", "v2"));
    fails(&mut store, update("/none", "v2"));
    ok(&mut store, cas("/k", "v3", Some("v2"), None));
    fails(&mut store, cas("/k", "v3", Some("v2"), None));
    ok(&mut store, cad("/c", Some("v"), None));
    fails(&mut store, cad("/c", Some("v"), None));
    ok(&mut store, delete("/k", false, false));
    fails(&mut store, delete("/k", false, false));
    ok(&mut store, set_ttl("/t", "v", T0));
    store.apply(&Command::Sync { now: T0 });
    store.get("/t", false, false).unwrap_err();
    store.get("/", false, false).unwrap();
    let want = StoreStats {
        gets_success: 1,
        gets_fail: 1,
        sets_success: 2,
        sets_fail: 2,
        delete_success: 1,
        delete_fail: 1,
        update_success: 1,
        update_fail: 1,
        create_success: 1,
        create_fail: 2,
        compare_and_swap_success: 1,
        compare_and_swap_fail: 1,
        compare_and_delete_success: 1,
        compare_and_delete_fail: 1,
        expire_count: 1,
    };
    assert_eq!(store.stats(), want);
}
