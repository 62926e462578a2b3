//! `/v2/stats/self`, `/v2/stats/leader` and `/v2/stats/store` as etcd 2.3 renders them.

use std::sync::atomic::Ordering;

use super::{json_response, unix_nanos_now, Api};
use crate::cluster::id_hex;
use crate::error::write_json_string;
use crate::http::Response;
use crate::store::StoreStats;
use crate::timefmt::{go_duration, rfc3339_nanos};

pub fn self_stats(api: &Api) -> Response {
    let raft = &api.shard.shared.raft;
    let leader = raft.leader.load(Ordering::Acquire);
    let is_leader = raft.is_leader.load(Ordering::Acquire);
    let state = if is_leader {
        "StateLeader"
    } else {
        "StateFollower"
    };
    let now = unix_nanos_now();
    let start = api.shared.start_time;
    let leader_since = match raft.leader_since.load(Ordering::Relaxed) {
        0 => start,
        t => t,
    };
    let fig = api.shared.transport.figures();
    let mut b = Vec::with_capacity(400);
    b.extend_from_slice(b"{\"name\":");
    write_json_string(&mut b, &api.shared.member.name);
    b.extend_from_slice(b",\"id\":");
    write_json_string(&mut b, &id_hex(api.shared.member.id));
    b.extend_from_slice(b",\"state\":");
    write_json_string(&mut b, state);
    b.extend_from_slice(b",\"startTime\":");
    write_json_string(&mut b, &rfc3339_nanos(start));
    b.extend_from_slice(b",\"leaderInfo\":{\"leader\":");
    write_json_string(
        &mut b,
        &if leader == 0 {
            String::new()
        } else {
            id_hex(leader)
        },
    );
    b.extend_from_slice(b",\"uptime\":");
    write_json_string(&mut b, &go_duration((now - leader_since).max(0) as u64));
    b.extend_from_slice(b",\"startTime\":");
    write_json_string(&mut b, &rfc3339_nanos(leader_since));
    b.extend_from_slice(b"}");
    // Rates are left out when zero, as etcd's `omitempty` does.
    let mut field = |name: &str, value: String| {
        b.extend_from_slice(format!(",\"{name}\":{value}").as_bytes());
    };
    field("recvAppendRequestCnt", fig.recv_append_requests.to_string());
    for (name, v) in [
        ("recvPkgRate", fig.recv_pkg_rate),
        ("recvBandwidthRate", fig.recv_bandwidth_rate),
    ] {
        if v != 0.0 {
            field(name, v.to_string());
        }
    }
    field("sendAppendRequestCnt", fig.send_append_requests.to_string());
    for (name, v) in [
        ("sendPkgRate", fig.send_pkg_rate),
        ("sendBandwidthRate", fig.send_bandwidth_rate),
    ] {
        if v != 0.0 {
            field(name, v.to_string());
        }
    }
    b.extend_from_slice(b"}\n");
    json_response(200, b)
}

/// The leader's view of its followers: batch round-trip latency (milliseconds) and counts of
/// batches delivered and failed. Anyone else answers 403 as etcd does.
pub fn leader_stats(api: &Api) -> Response {
    let raft = &api.shard.shared.raft;
    if !raft.is_leader.load(Ordering::Acquire) {
        return json_response(403, b"{\"message\":\"not current leader\"}".to_vec());
    }
    let members = api.shard.shared.membership();
    let mut b = Vec::with_capacity(256);
    b.extend_from_slice(b"{\"leader\":");
    write_json_string(&mut b, &id_hex(api.shared.member.id));
    b.extend_from_slice(b",\"followers\":{");
    let mut first = true;
    for (id, f) in api.shared.transport.followers() {
        if members.get(id).is_none() {
            continue;
        }
        if !first {
            b.push(b',');
        }
        first = false;
        write_json_string(&mut b, &id_hex(id));
        let l = &f.latency;
        b.extend_from_slice(
            format!(
                ":{{\"latency\":{{\"current\":{},\"average\":{},\"standardDeviation\":{},\"minimum\":{},\"maximum\":{}}},\"counts\":{{\"fail\":{},\"success\":{}}}}}",
                l.current, l.average, l.standard_deviation, l.minimum, l.maximum, f.fail, f.success
            )
            .as_bytes(),
        );
    }
    b.extend_from_slice(b"}}\n");
    json_response(200, b)
}

/// Write counters come from the published store version; read counters and watchers are summed
/// over shards.
pub fn store_stats(api: &Api) -> Response {
    let mut stats: StoreStats = api.shard.view().stats().clone();
    stats.gets_success = 0;
    stats.gets_fail = 0;
    for c in api.shared.counters.iter() {
        stats.gets_success += c.0.gets_success.load(Ordering::Relaxed);
        stats.gets_fail += c.0.gets_fail.load(Ordering::Relaxed);
    }
    let mut b = Vec::with_capacity(400);
    stats.write_json(&mut b, api.shard.shared.total_watchers() as usize);
    json_response(200, b)
}

/// `/debug/vars`: what etcd's expvar endpoint shows that means something for tern: the
/// command line, the open-files limit and raft's status (Go's `memstats` has no counterpart).
pub fn debug_vars(api: &Api) -> Response {
    let raft = api
        .shard
        .shared
        .raft
        .debug
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let vars = serde_json::json!({
        "cmdline": std::env::args().collect::<Vec<_>>(),
        "file_descriptor_limit": crate::metrics::fd_limit(),
        "raft.status": raft,
    });
    let mut r = json_response(200, vars.to_string().into_bytes());
    r.headers[0].1 = "application/json; charset=utf-8".into();
    r
}

/// `/metrics` in Prometheus text format (see [`crate::metrics`]).
pub fn metrics(api: &Api) -> Response {
    let shared = &api.shard.shared;
    let reads = api.shared.counters.iter().fold((0, 0), |(ok, fail), c| {
        (
            ok + c.0.gets_success.load(Ordering::Relaxed),
            fail + c.0.gets_fail.load(Ordering::Relaxed),
        )
    });
    let store = api.shard.view().stats().clone();
    let body = crate::metrics::render(&crate::metrics::Scrape {
        shared,
        member_id: shared.member_id.load(Ordering::Relaxed),
        applied: api.shard.view().raft_index,
        server_version: super::ETCD_SERVER_VERSION,
        cluster_version: super::ETCD_CLUSTER_VERSION,
        store: &store,
        reads,
        peers: api.shared.transport.traffic(),
        round_trips: api.shared.transport.round_trips(),
        snapshot_sends: api.shared.transport.snapshot_sends(),
    });
    let mut r = super::text_response(200, &body);
    r.headers[0].1 = "text/plain; version=0.0.4".into();
    r
}
