//! Watches: live firing, history replay, hidden keys, streams, removal through a parent.

use super::*;
use crate::store::{Action, WatcherId};

fn waiting(
    store: &mut Replica,
    key: &str,
    recursive: bool,
    stream: bool,
    since: Option<u64>,
) -> WatcherId {
    match store.watch(key, recursive, stream, since) {
        Ok(WatchStart::Waiting(id)) => id,
        other => panic!("watch {key} should wait, got {other:?}"),
    }
}

fn ready(store: &mut Replica, key: &str, recursive: bool, since: u64) -> Arc<Event> {
    match store.watch(key, recursive, false, Some(since)) {
        Ok(WatchStart::Ready(event)) => event,
        other => panic!("watch {key} since {since} should be ready, got {other:?}"),
    }
}

/// Applies a command and returns which watchers fired, with the fired event's key and index.
fn fired_by(store: &mut Replica, command: Command) -> Vec<(WatcherId, String, u64)> {
    store
        .apply(&command)
        .fired
        .iter()
        .map(|(id, e)| (*id, e.node.key.clone(), e.index()))
        .collect()
}

#[test]
fn exact_watcher_fires_once_on_its_key_only() {
    let mut store = Replica::new(1000);
    let id = waiting(&mut store, "/foo", false, false, None);
    assert_eq!(store.watcher_count(), 1);
    assert!(fired_by(&mut store, set("/foo/bar", "1")).is_empty());
    assert!(fired_by(&mut store, set("/other", "1")).is_empty());
    ok(&mut store, delete("/foo", false, true));
    assert_eq!(
        store.watcher_count(),
        0,
        "one-shot watcher left the hub when it fired"
    );
    let id2 = waiting(&mut store, "/foo", false, false, None);
    assert_ne!(id, id2);
    assert_eq!(
        fired_by(&mut store, set("/foo", "x")),
        [(id2, "/foo".to_string(), 4)]
    );
    assert_eq!(store.watcher_count(), 0);
}

#[test]
fn recursive_watcher_sees_changes_below_but_not_hidden_ones() {
    let mut store = Replica::new(1000);
    let dir = waiting(&mut store, "/dir", true, true, None);
    let root = waiting(&mut store, "/", true, true, None);
    let hidden_key = waiting(&mut store, "/dir/_h", false, true, None);
    let hidden_dir = waiting(&mut store, "/_hd", true, true, None);
    assert_eq!(
        fired_by(&mut store, set("/dir/a/b", "1")),
        [(root, "/dir/a/b".into(), 1), (dir, "/dir/a/b".into(), 1)]
    );
    assert_eq!(
        fired_by(&mut store, set("/dir/_h", "1")),
        [(hidden_key, "/dir/_h".into(), 2)]
    );
    assert!(fired_by(&mut store, set("/dir/_x/y", "1")).is_empty());
    // Inside a hidden directory, what is below the watch path decides.
    assert_eq!(
        fired_by(&mut store, set("/_hd/a", "1")),
        [(hidden_dir, "/_hd/a".into(), 4)]
    );
    assert!(fired_by(&mut store, set("/dirx", "1"))
        .iter()
        .all(|(id, _, _)| *id == root));
    assert_eq!(store.watcher_count(), 4, "stream watchers stay");
}

#[test]
fn stream_watcher_fires_repeatedly_until_unwatched() {
    let mut store = Replica::new(1000);
    let id = waiting(&mut store, "/k", false, true, None);
    for i in 1..=3 {
        assert_eq!(
            fired_by(&mut store, set("/k", "v")),
            [(id, "/k".to_string(), i)]
        );
    }
    store.unwatch(id);
    store.unwatch(id);
    assert_eq!(store.watcher_count(), 0);
    assert!(fired_by(&mut store, set("/k", "v")).is_empty());
}

#[test]
fn history_replays_the_first_matching_event_with_the_current_index() {
    let mut store = Replica::new(1000);
    ok(&mut store, set("/a", "1"));
    ok(&mut store, set("/b/c", "1"));
    ok(&mut store, set("/a", "2"));
    let replayed = ready(&mut store, "/a", false, 2);
    assert_eq!(
        (
            replayed.index(),
            replayed.etcd_index,
            replayed.node.value.as_deref()
        ),
        (3, 3, Some("2"))
    );
    assert_eq!(ready(&mut store, "/b", true, 1).node.key, "/b/c");
    assert_eq!(ready(&mut store, "/", true, 1).node.key, "/a");
    // Nothing matching yet: registers with that since index.
    let id = waiting(&mut store, "/b", false, false, Some(1));
    assert_eq!(
        fired_by(&mut store, delete("/b", false, true)),
        [(id, "/b".into(), 4)]
    );
    // waitIndex 0 means "from the next index".
    waiting(&mut store, "/a", false, false, Some(0));
    assert_eq!(store.watcher_count(), 1);
}

#[test]
fn history_replay_does_not_hide_underscore_keys_like_etcd() {
    let mut store = Replica::new(1000);
    ok(&mut store, set("/w/_h", "1"));
    assert_eq!(ready(&mut store, "/w", true, 1).node.key, "/w/_h");
    assert_eq!(ready(&mut store, "/", true, 1).node.key, "/w/_h");
}

#[test]
fn history_replay_skips_refreshes() {
    let mut store = Replica::new(1000);
    ok(&mut store, set_ttl("/r", "1", T0 + 100 * SECOND));
    let refresh = Command::Set {
        key: "/r".into(),
        value: String::new(),
        dir: false,
        expire_at: Some(T0 + 200 * SECOND),
        refresh: true,
    };
    let id = waiting(&mut store, "/r", false, false, None);
    assert!(
        store.apply(&refresh).fired.is_empty(),
        "refresh notifies nobody"
    );
    assert_eq!(store.watcher_count(), 1);
    assert_eq!(store.index(), 2);
    waiting(&mut store, "/r", false, false, Some(2));
    assert_eq!(ready(&mut store, "/r", false, 1).index(), 1);
    store.unwatch(id);
}

#[test]
fn watch_older_than_the_history_is_401_with_etcds_cause() {
    let mut store = Replica::new(3);
    for _ in 0..5 {
        ok(&mut store, set("/k", "v"));
    }
    let error = store.watch("/k", false, false, Some(2)).unwrap_err();
    assert_error(
        &error,
        Code::EventIndexCleared,
        "the requested history has been cleared [3/2]",
        5,
    );
    assert_eq!(
        String::from_utf8(error.to_json()).unwrap(),
        "{\"errorCode\":401,\"message\":\"The event in requested index is outdated and cleared\",\
         \"cause\":\"the requested history has been cleared [3/2]\",\"index\":5}\n"
    );
    assert_eq!(ready(&mut store, "/k", false, 3).index(), 3);
}

#[test]
fn future_since_fires_only_from_that_index() {
    let mut store = Replica::new(1000);
    let id = waiting(&mut store, "/k", false, false, Some(3));
    assert!(fired_by(&mut store, set("/k", "1")).is_empty());
    assert!(fired_by(&mut store, set("/k", "2")).is_empty());
    assert_eq!(fired_by(&mut store, set("/k", "3")), [(id, "/k".into(), 3)]);
}

#[test]
fn removal_through_a_parent_reaches_watchers_of_every_removed_node() {
    let mut store = Replica::new(1000);
    ok(&mut store, set("/s/k", "1"));
    ok(&mut store, set("/s/_h", "1"));
    let on_key = waiting(&mut store, "/s/k", false, false, None);
    let on_hidden = waiting(&mut store, "/s/_h", false, false, None);
    let below_missing = waiting(&mut store, "/s/k/deeper", false, false, None);
    let on_dir = waiting(&mut store, "/s", false, false, None);
    let stream_on_dir = waiting(&mut store, "/s", false, true, None);
    let applied = store.apply(&delete("/s", false, true));
    let ids: Vec<WatcherId> = applied.fired.iter().map(|(id, _)| *id).collect();
    // Removed nodes first (children in key order, then the directory), then the usual walk:
    // the stream watcher on /s hears the event twice, as etcd's does.
    assert_eq!(
        ids,
        [on_hidden, on_key, on_dir, stream_on_dir, stream_on_dir]
    );
    assert!(applied
        .fired
        .iter()
        .all(|(_, e)| e.action == Action::Delete && e.node.key == "/s"));
    assert_eq!(
        store.watcher_count(),
        2,
        "the stream watcher and the one below a missing key stay"
    );
    store.unwatch(below_missing);
    store.unwatch(stream_on_dir);
    // The history answers a later watch on a key below a deleted directory.
    assert_eq!(
        ready(&mut store, "/s/k/deeper", false, 3).action,
        Action::Delete
    );
}

#[test]
fn expiry_is_seen_by_watchers_of_the_key_and_below_an_expiring_dir() {
    let mut store = Replica::new(1000);
    ok(&mut store, set_ttl("/t/x", "1", T0 + SECOND));
    ok(&mut store, set("/td/y", "1"));
    let dir_ttl = Command::Update {
        key: "/td".into(),
        value: None,
        dir: true,
        expire_at: Some(T0 + 2 * SECOND),
        refresh: false,
    };
    ok(&mut store, dir_ttl);
    let on_x = waiting(&mut store, "/t/x", false, false, None);
    let on_y = waiting(&mut store, "/td/y", false, false, None);
    let on_t = waiting(&mut store, "/t", true, false, None);
    let applied = store.apply(&Command::Sync {
        now: T0 + 2 * SECOND,
    });
    let seen: Vec<(WatcherId, Action, &str, u64)> = applied
        .fired
        .iter()
        .map(|(id, e)| (*id, e.action, e.node.key.as_str(), e.index()))
        .collect();
    assert_eq!(
        seen,
        [
            (on_x, Action::Expire, "/t/x", 4),
            (on_t, Action::Expire, "/t/x", 4),
            (on_y, Action::Expire, "/td", 5)
        ]
    );
    assert_eq!(store.watcher_count(), 0);
}
