//! Exact response bodies for representative events, checked against etcd 3.4's v2 API.

use super::*;
use crate::store::Command;

#[test]
fn set_then_overwrite_shows_prev_node() {
    let mut store = Replica::new(1000);
    let first = ok(&mut store, set("/foo", "bar"));
    assert_eq!(
        json(&first, T0),
        "{\"action\":\"set\",\"node\":{\"key\":\"/foo\",\"value\":\"bar\",\"modifiedIndex\":1,\"createdIndex\":1}}\n"
    );
    let second = ok(&mut store, set("foo", "baz"));
    assert_eq!(
        json(&second, T0),
        "{\"action\":\"set\",\"node\":{\"key\":\"/foo\",\"value\":\"baz\",\"modifiedIndex\":2,\"createdIndex\":2},\
         \"prevNode\":{\"key\":\"/foo\",\"value\":\"bar\",\"modifiedIndex\":1,\"createdIndex\":1}}\n"
    );
    assert_eq!(second.etcd_index, 2);
}

#[test]
fn create_with_ttl_shows_expiration_and_rounded_up_ttl() {
    let mut store = Replica::new(1000);
    let expire_at = T0 + 100 * SECOND + 199_049_708;
    let command = Command::Create {
        key: "/k".into(),
        value: "v".into(),
        dir: false,
        expire_at: Some(expire_at),
        unique: false,
    };
    let event = ok(&mut store, command);
    assert_eq!(
        json(&event, T0),
        "{\"action\":\"create\",\"node\":{\"key\":\"/k\",\"value\":\"v\",\
         \"expiration\":\"2026-11-23T20:14:29.199049708Z\",\"ttl\":101,\"modifiedIndex\":1,\"createdIndex\":1}}\n"
    );
    // Read again 50.5 s later: the TTL counts down, rounded up.
    let later = store.get("/k", false, false).unwrap();
    assert!(json(&later, T0 + 50 * SECOND + SECOND / 2).contains("\"ttl\":50,"));
}

#[test]
fn recursive_delete_of_a_dir_shows_dir_and_prev_node() {
    let mut store = Replica::new(1000);
    ok(&mut store, set("/d/e/f", "1"));
    ok(&mut store, set_ttl("/d/g", "2", T0 + 5 * SECOND));
    let event = ok(&mut store, delete("/d", false, true));
    assert_eq!(
        json(&event, T0),
        "{\"action\":\"delete\",\"node\":{\"key\":\"/d\",\"dir\":true,\"modifiedIndex\":3,\"createdIndex\":1},\
         \"prevNode\":{\"key\":\"/d\",\"dir\":true,\"modifiedIndex\":1,\"createdIndex\":1}}\n"
    );
    let file = ok(&mut store, set("/x", "1"));
    let deleted = ok(&mut store, delete("/x", false, false));
    assert_eq!(file.node.created_index, 4);
    assert_eq!(
        json(&deleted, T0),
        "{\"action\":\"delete\",\"node\":{\"key\":\"/x\",\"modifiedIndex\":5,\"createdIndex\":4},\
         \"prevNode\":{\"key\":\"/x\",\"value\":\"1\",\"modifiedIndex\":4,\"createdIndex\":4}}\n"
    );
}

#[test]
fn get_of_a_file_is_written_from_the_tree_as_etcd_writes_it() {
    let mut store = Replica::new(1000);
    ok(
        &mut store,
        set_ttl("/k", "a\"b\\c\u{1}é", T0 + 100 * SECOND + 199_049_708),
    );
    ok(&mut store, set("/empty", ""));
    let view = store.store.published().view();
    let mut out = Vec::new();
    view.write_get("k/", false, &mut out, T0).unwrap();
    view.write_get("//empty", true, &mut out, T0).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"action\":\"get\",\"node\":{\"key\":\"/k\",\"value\":\"a\\\"b\\\\c\\u0001é\",\
         \"expiration\":\"2026-11-23T20:14:29.199049708Z\",\"ttl\":101,\"modifiedIndex\":1,\"createdIndex\":1}}\n\
         {\"action\":\"get\",\"node\":{\"key\":\"/empty\",\"value\":\"\",\"modifiedIndex\":2,\"createdIndex\":2}}\n"
    );
    let mut out = Vec::new();
    let missing = view.write_get("/k/x", false, &mut out, T0).unwrap_err();
    assert_eq!(missing.code, Code::NotDir);
    assert!(out.is_empty(), "an error writes nothing");
}

#[test]
fn recursive_sorted_get_of_a_nested_dir() {
    let mut store = Replica::new(1000);
    ok(&mut store, set("/d/e/f", "1"));
    ok(&mut store, set("/d/b", "2"));
    ok(&mut store, set("/d/e/_hidden", "h"));
    ok(&mut store, mkdir("/d/empty"));
    let event = store.get("/d", true, true).unwrap();
    assert_eq!(
        json(&event, T0),
        "{\"action\":\"get\",\"node\":{\"key\":\"/d\",\"dir\":true,\"nodes\":[\
         {\"key\":\"/d/b\",\"value\":\"2\",\"modifiedIndex\":2,\"createdIndex\":2},\
         {\"key\":\"/d/e\",\"dir\":true,\"nodes\":[{\"key\":\"/d/e/f\",\"value\":\"1\",\"modifiedIndex\":1,\"createdIndex\":1}],\
         \"modifiedIndex\":1,\"createdIndex\":1},\
         {\"key\":\"/d/empty\",\"dir\":true,\"modifiedIndex\":4,\"createdIndex\":4}],\
         \"modifiedIndex\":1,\"createdIndex\":1}}\n"
    );
    assert_eq!(event.etcd_index, 4);
    // Without recursive, child directories show no nodes.
    let flat = store.get("/d", false, false).unwrap();
    assert_eq!(
        json(&flat, T0),
        "{\"action\":\"get\",\"node\":{\"key\":\"/d\",\"dir\":true,\"nodes\":[\
         {\"key\":\"/d/b\",\"value\":\"2\",\"modifiedIndex\":2,\"createdIndex\":2},\
         {\"key\":\"/d/e\",\"dir\":true,\"modifiedIndex\":1,\"createdIndex\":1},\
         {\"key\":\"/d/empty\",\"dir\":true,\"modifiedIndex\":4,\"createdIndex\":4}],\
         \"modifiedIndex\":1,\"createdIndex\":1}}\n"
    );
}

#[test]
fn root_get_has_no_key_and_no_indexes() {
    let mut store = Replica::new(1000);
    assert_eq!(
        json(&store.get("/", false, false).unwrap(), T0),
        "{\"action\":\"get\",\"node\":{\"dir\":true}}\n"
    );
    ok(&mut store, set("/a", "1"));
    assert_eq!(
        json(&store.get("", false, false).unwrap(), T0),
        "{\"action\":\"get\",\"node\":{\"dir\":true,\"nodes\":[{\"key\":\"/a\",\"value\":\"1\",\"modifiedIndex\":1,\"createdIndex\":1}]}}\n"
    );
}

#[test]
fn expire_event_has_no_value_and_prev_node_keeps_expiration() {
    let mut store = Replica::new(1000);
    ok(&mut store, set_ttl("/t/x", "1", T0 + SECOND + 28_448_238));
    let WatchStart::Waiting(watcher) = store.watch("/t/x", false, false, None).unwrap() else {
        panic!("nothing in the history yet")
    };
    let applied = store.apply(&Command::Sync {
        now: T0 + 2 * SECOND,
    });
    assert!(applied.result.is_none());
    assert_eq!(applied.fired.len(), 1);
    let (id, event) = &applied.fired[0];
    assert_eq!(*id, watcher);
    // etcd computes ttl when it expires the key (about 0): written at the expiry time it is 0.
    assert_eq!(
        json(event, T0 + SECOND + 28_448_238),
        "{\"action\":\"expire\",\"node\":{\"key\":\"/t/x\",\"modifiedIndex\":2,\"createdIndex\":1},\
         \"prevNode\":{\"key\":\"/t/x\",\"value\":\"1\",\"expiration\":\"2026-11-23T20:12:50.028448238Z\",\
         \"modifiedIndex\":1,\"createdIndex\":1}}\n"
    );
}

#[test]
fn update_of_a_dir_ttl_shows_the_new_index_but_keeps_the_dirs() {
    let mut store = Replica::new(1000);
    ok(&mut store, set("/d/e/f", "1"));
    let command = Command::Update {
        key: "/d".into(),
        value: None,
        dir: true,
        expire_at: Some(T0 + 100 * SECOND),
        refresh: false,
    };
    let event = ok(&mut store, command);
    assert_eq!(
        json(&event, T0),
        "{\"action\":\"update\",\"node\":{\"key\":\"/d\",\"dir\":true,\"expiration\":\"2026-11-23T20:14:29Z\",\"ttl\":100,\
         \"modifiedIndex\":2,\"createdIndex\":1},\"prevNode\":{\"key\":\"/d\",\"dir\":true,\"modifiedIndex\":1,\"createdIndex\":1}}\n"
    );
    let got = store.get("/d", false, false).unwrap();
    assert_eq!(
        (got.node.modified_index, got.node.expire_at),
        (1, Some(T0 + 100 * SECOND))
    );
}

#[test]
fn errors_render_with_code_cause_and_index() {
    let mut store = Replica::new(1000);
    ok(&mut store, set("/k", ""));
    let error = fails(&mut store, cas("/k", "1", Some("x"), Some(3)));
    assert_eq!(
        String::from_utf8(error.to_json()).unwrap(),
        "{\"errorCode\":101,\"message\":\"Compare failed\",\"cause\":\"[x != ] [3 != 1]\",\"index\":1}\n"
    );
}
