//! Writes the seed corpora in `fuzz/corpus/<target>/` with tern's real encoders, so the seeds
//! can be regenerated whenever a format changes:
//!
//! ```sh
//! cd fuzz && cargo run --example gen_corpus
//! ```
//!
//! Seeds are named `seed-*` and are the only corpus files checked in (`fuzz/.gitignore`);
//! inputs a fuzz run adds to `corpus/<target>/` (named by content hash) are left alone.

use std::fs;
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::eraftpb::{ConfChangeType, Entry, Message, MessageType};
use tern::cluster::membership::{MemberChange, Membership};
use tern::cluster::Member;
use tern::raft::storage::{
    bootstrap_entries, conf_change_entry, encode_snapshot_payload, raft_snapshot, Bootstrap,
};
use tern::shard::proposal::{self, Origin};
use tern::store::{Command, Published, Store};
use tern::transport::encode_frame;
use tern::wal::record::{encode, Record};

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).expect("create corpus dir");
    dir
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let path = corpus(target).join(format!("seed-{name}"));
    fs::write(&path, bytes).expect("write seed");
}

fn set(key: &str, value: &str, expire_at: Option<i64>) -> Command {
    Command::Set {
        key: key.into(),
        value: value.into(),
        dir: false,
        expire_at,
        refresh: false,
    }
}

/// A small store with files, directories, TTL keys and a history of every kind of change.
fn store() -> Store {
    let mut s = Store::new(Published::new(1000));
    let commands = [
        set("/message", "hello", None),
        set("/dir/a", "1", None),
        set("/dir/sub/b", "2", Some(1_900_000_000_000_000_000)),
        Command::Set {
            key: "/empty".into(),
            value: String::new(),
            dir: true,
            expire_at: Some(1_800_000_000_000_000_000),
            refresh: false,
        },
        Command::Create {
            key: "/queue".into(),
            value: "job".into(),
            dir: false,
            expire_at: None,
            unique: true,
        },
        Command::Update {
            key: "/message".into(),
            value: Some("world".into()),
            dir: false,
            expire_at: None,
            refresh: false,
        },
        Command::CompareAndSwap {
            key: "/dir/a".into(),
            value: "3".into(),
            prev_value: Some("1".into()),
            prev_index: None,
            expire_at: None,
            refresh: false,
        },
        set("/_hidden", "h", None),
        set("/gone", "x", Some(1_000)),
        Command::Sync { now: 2_000 },
        set("/deleted", "x", None),
        Command::Delete {
            key: "/deleted".into(),
            dir: false,
            recursive: false,
        },
        Command::CompareAndDelete {
            key: "/_hidden".into(),
            prev_value: Some("h".into()),
            prev_index: None,
        },
        set("/unicode/ключ", "значение €", None),
    ];
    for c in &commands {
        let _ = s.apply(c);
    }
    s.publish(1, 1);
    s
}

fn members() -> (Vec<Member>, Membership) {
    let token = "tern-fuzz";
    let list: Vec<Member> = (1..=3)
        .map(|i| {
            Member::new(
                &format!("n{i}"),
                &[format!("http://127.0.0.{i}:2380")],
                &[format!("http://127.0.0.{i}:2379")],
                token,
            )
        })
        .collect();
    let mut m = Membership::default();
    for member in &list {
        m.apply(&MemberChange::Add(member.clone())).expect("add");
    }
    let gone = Member::new("n4", &["http://127.0.0.4:2380".into()], &[], token);
    m.apply(&MemberChange::Add(gone.clone())).expect("add");
    m.apply(&MemberChange::Remove(gone.id)).expect("remove");
    (list, m)
}

fn store_entry(index: u64, term: u64, command: &Command) -> Entry {
    let origin = Origin {
        member: 1,
        shard: 0,
        id: index,
    };
    let mut data = Vec::new();
    proposal::encode_store(origin, command, &mut data);
    Entry {
        index,
        term,
        data: data.into(),
        ..Default::default()
    }
}

fn http() {
    let t = "http_request";
    write(t, "get", b"GET /v2/keys/foo?recursive=true&wait=true&waitIndex=7 HTTP/1.1\r\nHost: 127.0.0.1:2379\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n");
    write(t, "put-form", b"PUT /v2/keys/message?ttl=5 HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\n\r\nvalue=Hello%20world&dir=false");
    write(t, "chunked-ext-trailer", b"POST /v2/keys/queue HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n6;name=v\r\nvalue=\r\n3 ; q=\"x;y\"\r\nabc\r\n0;end\r\nX-Trailer: t\r\nDigest: sha=1\r\n\r\n");
    write(t, "pipelined", b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nPUT /b?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcPOST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\nDELETE /d?prevValue=z HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    write(
        t,
        "http10-keepalive",
        b"GET /version HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /health HTTP/1.0\r\n\r\n",
    );
    write(t, "expect-continue", b"PUT /v2/keys/k HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 7\r\n\r\nvalue=v");
    write(t, "target-forms", b"GET http://example.com:2379/v2/keys?sorted=true HTTP/1.1\r\nHost: h\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: h\r\n\r\nBREW /pot?a?b HTTP/1.1\r\nHost: h\r\n\r\n");
    write(t, "members-json", b"POST /v2/members HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"peerURLs\":[\"http://127.0.0.4:2380\"]}\r\n");
    write(
        t,
        "bad-conflicting-length",
        b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    );
    write(
        t,
        "bad-gzip",
        b"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    );
    // Valid past the small limits' 256 header bytes, malformed after: 431 however it arrives
    // (it was 400 when read at once; see the request parser's regression test).
    let long = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nX-Long: {}\r\nBad Header: x\r\n\r\n",
        "a".repeat(300)
    );
    write(t, "header-limit-then-malformed", long.as_bytes());
    write(
        t,
        "bad-chunk-size",
        b"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
    );

    let t = "http_chunked";
    write(t, "ext-trailers", b"5;name=val\r\nhello\r\n6 ; a=\"b\"\r\n world\r\n0;last\r\nX-Trailer: t\r\nOther: u\r\n\r\n");
    write(
        t,
        "upper-hex",
        b"A\r\n0123456789\r\n1F\r\n0123456789abcdef0123456789ABCDE\r\n0\r\n\r\n",
    );
    write(t, "bare-lf", b"3\nabc\r\n0\n\n");
    write(
        t,
        "then-request",
        b"1\r\nz\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    write(t, "empty", b"0\r\n\r\n");
    write(t, "over-small-limit", b"1e\r\n012345678901234567890123456789\r\n1e\r\n012345678901234567890123456789\r\n0\r\n\r\n");
    write(t, "bad-data-end", b"2\r\nabXY0\r\n\r\n");
    write(t, "bad-trailer", b"0\r\nbad trailer\r\n\r\n");

    // Responses: the first byte picks the piece size of the split feed.
    let t = "http_response";
    write(
        t,
        "length-then-chunked",
        b"\x03HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    write(
        t,
        "continue-then-close",
        b"\x01HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nuntil close",
    );
    write(
        t,
        "no-content-then-trailer",
        b"\x07HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=1\r\nab\r\n0\r\nTrailer: x\r\n\r\n",
    );
    write(
        t,
        "etcd-watch-stream",
        b"\x05HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Etcd-Index: 7\r\nTransfer-Encoding: chunked\r\n\r\n54\r\n{\"action\":\"set\",\"node\":{\"key\":\"/a\",\"value\":\"1\",\"modifiedIndex\":8,\"createdIndex\":8}}\n\r\n",
    );
    write(t, "bad-status", b"\x02HTTP/1.1 2x0 OK\r\n\r\n");
    write(t, "leading-crlf", b"\x01\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
}

fn form() {
    let t = "form";
    write(
        t,
        "etcd-put",
        b"value=bar&ttl=5&prevExist=false&prevIndex=12",
    );
    write(
        t,
        "escapes",
        b"a=x+y&b=%2Fslash%2f&c&=skip&&d=%E2%82%AC&e=a=b",
    );
    write(t, "path", b"/v2/keys/a%2Fb+c%20d/%E2%82%AC");
    write(t, "bad-escape", b"x=%zz&y=%2");
    write(t, "semicolon", b"a=1;b=2&c=3");
    write(
        t,
        "pairs",
        "key\tvalue\nk2\tv2 with space\nключ\tзначение\n\tempty key".as_bytes(),
    );
    write(t, "invalid-utf8", b"v=%ff%fe&w=\xff");
}

fn wal() {
    let t = "wal_record";
    let (list, _) = members();
    let boot = Bootstrap {
        member_id: list[0].id,
        cluster_id: tern::cluster::cluster_id(&list.iter().map(|m| m.id).collect::<Vec<_>>()),
        name: "n1".into(),
        voters: list.iter().map(|m| m.id).collect(),
    };
    let (term, vote, commit) = (2, list[0].id, 5);
    let mut entries: Vec<Vec<u8>> = bootstrap_entries(&list)
        .iter()
        .map(|e| e.write_to_bytes().expect("entry"))
        .collect();
    entries.push(
        store_entry(4, 2, &set("/message", "hello", None))
            .write_to_bytes()
            .expect("entry"),
    );
    entries.push(
        store_entry(5, 2, &Command::Sync { now: 1_000 })
            .write_to_bytes()
            .expect("entry"),
    );
    let meta = boot.encode();
    let mut seg = Vec::new();
    let mut prev = encode(&mut seg, 0, &Record::Crc(0)).expect("crc");
    prev = encode(&mut seg, prev, &Record::Metadata(&meta)).expect("metadata");
    prev = encode(&mut seg, prev, &Record::HardState { term, vote, commit }).expect("hard state");
    let mut starts = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        starts.push(seg.len());
        prev = encode(
            &mut seg,
            prev,
            &Record::Entry {
                index: i as u64 + 1,
                term: if i < 3 { 1 } else { 2 },
                data: e,
            },
        )
        .expect("entry");
    }
    encode(&mut seg, prev, &Record::Snapshot { index: 5, term: 2 }).expect("snapshot");
    let with_mode = |mode: u8, body: &[u8]| {
        let mut v = vec![mode];
        v.extend_from_slice(body);
        v
    };
    let mut padded = seg.clone();
    padded.resize(seg.len() + 64, 0);
    write(t, "segment", &with_mode(0, &padded));
    write(t, "segment-repair", &with_mode(1, &seg));
    write(
        t,
        "segment-torn-tail",
        &with_mode(0, &seg[..seg.len() - 20]),
    );
    let mut flipped = padded.clone();
    flipped[starts[1] + 40] ^= 0x08;
    write(t, "segment-flipped-middle", &with_mode(0, &flipped));
    // Mode 2 reads a record description; the metadata and an entry make reasonable bytes.
    write(t, "records", &with_mode(2, &seg[..seg.len().min(900)]));
    write(t, "records-small", &with_mode(2, b"\x01\x02\x03\x04\x00\x05meta!\x01\x07\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x03abc\x04"));
}

fn snapshots() -> Vec<u8> {
    let t = "snapshot";
    let (list, members) = members();
    let voters: Vec<u64> = list.iter().map(|m| m.id).collect();
    let store = store().published().snapshot().encode();
    let payload = encode_snapshot_payload(&voters, &members, &store);
    write(t, "full", &tern::snap::encode(17, 2, &payload));
    let empty = encode_snapshot_payload(
        &voters[..1],
        &Membership::default(),
        &Store::new(Published::new(10)).published().snapshot().encode(),
    );
    write(t, "empty-store", &tern::snap::encode(1, 1, &empty));
    write(t, "payload-only", &payload);
    write(t, "store-only", &store);
    payload
}

fn frames(snapshot_payload: Vec<u8>) {
    let t = "peer_frames";
    let (list, _) = members();
    let (a, b) = (list[0].id, list[1].id);
    let mut heartbeat = Message::default();
    heartbeat.set_msg_type(MessageType::MsgHeartbeat);
    heartbeat.from = a;
    heartbeat.to = b;
    heartbeat.term = 3;
    heartbeat.commit = 7;
    let mut append = Message::default();
    append.set_msg_type(MessageType::MsgAppend);
    append.from = a;
    append.to = b;
    append.term = 3;
    append.log_term = 2;
    append.index = 7;
    append.commit = 7;
    let mut entries = bootstrap_entries(&list[..1]);
    entries.push(store_entry(
        8,
        3,
        &set("/k", "v", Some(1_900_000_000_000_000_000)),
    ));
    entries.push(store_entry(
        9,
        3,
        &Command::Delete {
            key: "/dir".into(),
            dir: true,
            recursive: true,
        },
    ));
    entries.push(conf_change_entry(
        10,
        3,
        ConfChangeType::RemoveNode,
        list[2].id,
        &MemberChange::Remove(list[2].id),
    ));
    entries.push(conf_change_entry(
        11,
        3,
        ConfChangeType::AddNode,
        list[2].id,
        &MemberChange::Publish {
            id: list[2].id,
            name: "n3".into(),
            client_urls: vec!["http://127.0.0.3:2379".into()],
        },
    ));
    append.set_entries(entries.into());
    let mut resp = Message::default();
    resp.set_msg_type(MessageType::MsgAppendResponse);
    resp.from = b;
    resp.to = a;
    resp.term = 3;
    resp.index = 11;
    resp.reject = false;
    let mut batch = Vec::new();
    for m in [&heartbeat, &append, &resp] {
        encode_frame(m, &mut batch);
    }
    write(t, "batch", &batch);
    let mut one = Vec::new();
    encode_frame(&heartbeat, &mut one);
    write(t, "heartbeat", &one);
    let mut snap = Message::default();
    snap.set_msg_type(MessageType::MsgSnapshot);
    snap.from = a;
    snap.to = b;
    snap.term = 3;
    snap.set_snapshot(raft_snapshot(17, 2, vec![a, b], snapshot_payload));
    let mut body = Vec::new();
    encode_frame(&snap, &mut body);
    write(t, "snapshot", &body);
    write(
        t,
        "append-unframed",
        &append.write_to_bytes().expect("message"),
    );
    write(t, "empty", b"");
    streams(&batch, &one);
}

/// `peer_stream` seeds: a piece-size byte, then a stream of frames with keep-alives (zero
/// lengths) between them.
fn streams(batch: &[u8], heartbeat: &[u8]) {
    let t = "peer_stream";
    let keepalive = [0u8; 4];
    let mut mixed = vec![6];
    mixed.extend_from_slice(&keepalive);
    mixed.extend_from_slice(batch);
    mixed.extend_from_slice(&keepalive);
    mixed.extend_from_slice(heartbeat);
    // A frame cut short: the stream ends mid-frame.
    mixed.extend_from_slice(&heartbeat[..5]);
    write(t, "keepalives-and-frames", &mixed);
    let mut tiny = vec![0];
    tiny.extend_from_slice(heartbeat);
    tiny.extend_from_slice(heartbeat);
    write(t, "one-byte-pieces", &tiny);
    let mut oversized = vec![200];
    oversized.extend_from_slice(&5000u32.to_le_bytes());
    oversized.extend_from_slice(&[b'x'; 16]);
    write(t, "oversized", &oversized);
}

fn main() {
    http();
    form();
    wal();
    let payload = snapshots();
    frames(payload);
    println!("seeds written under {}", corpus("").display());
}
