//! `/metrics`: Prometheus exposition under etcd 3.4's metric names, types, labels and units
//! (for the dashboards and alerts written for etcd), built with the `prometheus` crate, plus
//! tern's own `tern_*` series for what etcd has no name for.
//!
//! Nothing here is on the request path: the values live in atomics the server keeps anyway
//! ([`crate::shard::RaftStatus`], per-shard counters summed at scrape) and in one lock-free
//! histogram written by the raft loop; a scrape reads them into a fresh registry and encodes
//! it. Owns the names, help texts and buckets; knows nothing about how the values are made.

use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntGauge, IntGaugeVec, Opts};

use crate::shard::Shared;

pub mod http;
pub mod proxy;

/// etcd's v2 store families (`etcd_debugging_store_*`).
pub const ETCD_STORE_FAMILIES: &[&str] = &[
    "etcd_debugging_store_reads_total",
    "etcd_debugging_store_writes_total",
    "etcd_debugging_store_expires_total",
    "etcd_debugging_store_watch_requests_total",
    "etcd_debugging_store_watchers",
];

/// etcd's HTTP families: exported once a request of the kind was seen, as etcd does.
pub const ETCD_HTTP_FAMILIES: &[&str] = &[
    "etcd_http_received_total",
    "etcd_http_failed_total",
    "etcd_http_successful_duration_seconds",
];

/// etcd's peer network families: exported once there is traffic with a peer (a single member
/// has none), so `tests/metrics.rs` compares them against a three-member etcd.
pub const ETCD_NETWORK_FAMILIES: &[&str] = &[
    "etcd_network_peer_sent_bytes_total",
    "etcd_network_peer_received_bytes_total",
    "etcd_network_peer_sent_failures_total",
    "etcd_network_peer_received_failures_total",
    "etcd_network_peer_round_trip_time_seconds",
    "etcd_network_active_peers",
    "etcd_network_disconnected_peers_total",
];

/// etcd's snapshot transfer families with their types and label names, as etcd 3.4 declares
/// them (its `rafthttp/metrics.go`): a snapshot transfer in etcd needs over 5,000 entries
/// past its last snapshot, too slow to provoke in a test, so `tests/cluster.rs` checks tern's
/// against this list.
pub const ETCD_SNAPSHOT_TRANSFER_FAMILIES: &[(&str, &str, &str)] = &[
    ("etcd_network_snapshot_send_success", "counter", "To"),
    ("etcd_network_snapshot_send_failures", "counter", "To"),
    (
        "etcd_network_snapshot_send_total_duration_seconds",
        "histogram",
        "To",
    ),
    ("etcd_network_snapshot_receive_success", "counter", "From"),
    ("etcd_network_snapshot_receive_failures", "counter", "From"),
];

/// The families tern exports under etcd's names (the test `tests/metrics.rs` holds each to
/// etcd 3.4's name, type and label names).
pub const ETCD_FAMILIES: &[&str] = &[
    "etcd_server_has_leader",
    "etcd_server_is_leader",
    "etcd_server_leader_changes_seen_total",
    "etcd_server_proposals_committed_total",
    "etcd_server_proposals_applied_total",
    "etcd_server_proposals_pending",
    "etcd_server_proposals_failed_total",
    "etcd_server_read_indexes_failed_total",
    "etcd_server_heartbeat_send_failures_total",
    "etcd_server_slow_apply_total",
    "etcd_server_health_success",
    "etcd_server_health_failures",
    "etcd_server_id",
    "etcd_server_version",
    "etcd_cluster_version",
    "etcd_disk_wal_fsync_duration_seconds",
    "etcd_disk_wal_write_bytes_total",
    "etcd_snap_fsync_duration_seconds",
    "etcd_debugging_snap_save_total_duration_seconds",
    "os_fd_used",
    "os_fd_limit",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_start_time_seconds",
];

/// One of etcd's duration histograms, made once and observed lock-free (a scrape registers a
/// clone that shares the counts).
#[derive(Clone)]
pub struct DurationHistogram(Histogram);

impl DurationHistogram {
    fn new(name: &str, help: &str, buckets: Vec<f64>) -> Self {
        let opts = HistogramOpts::new(name, help).buckets(buckets);
        DurationHistogram(Histogram::with_opts(opts).expect("valid histogram"))
    }

    pub fn observe(&self, took: Duration) {
        self.0.observe(took.as_secs_f64());
    }
}

/// etcd's disk histograms: 1 ms doubling to 8 s.
fn disk_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.001, 2.0, 14).expect("valid buckets")
}

/// etcd's `etcd_disk_wal_fsync_duration_seconds`. tern's WAL makes entries durable with one
/// O_DSYNC write (write and sync in one), which is what is timed.
#[derive(Clone)]
pub struct WalSyncHistogram(pub DurationHistogram);

impl Default for WalSyncHistogram {
    fn default() -> Self {
        WalSyncHistogram(DurationHistogram::new(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
            disk_buckets(),
        ))
    }
}

/// `tern_wal_sync_entries`: how many raft entries each WAL sync made durable (group commit at
/// work: under load one sync carries many writes), 1 doubling to 4096.
#[derive(Clone)]
pub struct BatchHistogram(Histogram);

impl Default for BatchHistogram {
    fn default() -> Self {
        let opts = HistogramOpts::new(
            "tern_wal_sync_entries",
            "Raft entries made durable by each WAL sync (group commit batch sizes).",
        )
        .buckets(prometheus::exponential_buckets(1.0, 2.0, 13).expect("valid buckets"));
        BatchHistogram(Histogram::with_opts(opts).expect("valid histogram"))
    }
}

impl BatchHistogram {
    pub fn observe(&self, entries: usize) {
        self.0.observe(entries as f64);
    }
}

/// etcd's snapshot file histograms: `etcd_snap_fsync_duration_seconds` (the fsync of the
/// snapshot file) and `etcd_debugging_snap_save_total_duration_seconds` (writing it whole:
/// file, fsync, rename, directory fsync), 1 ms doubling to 8 s like etcd's.
#[derive(Clone)]
pub struct SnapSaveHistograms {
    pub fsync: DurationHistogram,
    pub total: DurationHistogram,
}

impl Default for SnapSaveHistograms {
    fn default() -> Self {
        SnapSaveHistograms {
            fsync: DurationHistogram::new(
                "etcd_snap_fsync_duration_seconds",
                "The latency distributions of fsync called by snap.",
                disk_buckets(),
            ),
            total: DurationHistogram::new(
                "etcd_debugging_snap_save_total_duration_seconds",
                "The total latency distributions of save called by snapshot.",
                disk_buckets(),
            ),
        }
    }
}

impl SnapSaveHistograms {
    pub fn observe(&self, times: crate::snap::SaveTimes) {
        self.fsync.observe(times.fsync);
        self.total.observe(times.total);
    }
}

/// A duration histogram per peer (label `To`, the peer's ID in hex): etcd's
/// `etcd_network_peer_round_trip_time_seconds` (0.1 ms doubling to 3.2768 s) and
/// `etcd_network_snapshot_send_total_duration_seconds` (0.1 s doubling to 51.2 s).
#[derive(Clone)]
pub struct PeerRoundTrips(prometheus::HistogramVec);

impl Default for PeerRoundTrips {
    fn default() -> Self {
        PeerRoundTrips::new(
            "etcd_network_peer_round_trip_time_seconds",
            "Round-Trip-Time histogram between peers",
            prometheus::exponential_buckets(0.0001, 2.0, 16).expect("valid buckets"),
        )
    }
}

impl PeerRoundTrips {
    fn new(name: &str, help: &str, buckets: Vec<f64>) -> Self {
        let opts = HistogramOpts::new(name, help).buckets(buckets);
        PeerRoundTrips(prometheus::HistogramVec::new(opts, &["To"]).expect("valid histogram"))
    }

    /// etcd's snapshot send durations.
    pub fn snapshot_sends() -> Self {
        PeerRoundTrips::new(
            "etcd_network_snapshot_send_total_duration_seconds",
            "Total latency distributions of v3 snapshot sends",
            prometheus::exponential_buckets(0.1, 2.0, 10).expect("valid buckets"),
        )
    }

    /// The histogram of one peer: kept by its sender, so observing takes no lock.
    pub fn peer(&self, id: u64) -> DurationHistogram {
        DurationHistogram(self.0.with_label_values(&[&crate::cluster::id_hex(id)]))
    }

    /// Forgets a peer that left the cluster.
    pub fn remove(&self, id: u64) {
        let _ = self.0.remove_label_values(&[&crate::cluster::id_hex(id)]);
    }
}

/// Peer traffic under etcd's `etcd_network_*` names, per peer ID.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PeerTraffic {
    pub sent_bytes: u64,
    pub sent_failures: u64,
    pub received_bytes: u64,
    pub received_failures: u64,
    /// Whether messages reach the peer now (etcd_network_active_peers).
    pub active: bool,
    /// Times an active link to the peer broke (etcd_network_disconnected_peers_total).
    pub disconnects: u64,
    /// Snapshots sent to the peer and received from it, and those that failed
    /// (etcd_network_snapshot_{send,receive}_{success,failures}).
    pub snapshots_sent: u64,
    pub snapshot_send_failures: u64,
    pub snapshots_received: u64,
    pub snapshot_receive_failures: u64,
}

/// What a scrape needs besides [`Shared`].
pub struct Scrape<'a> {
    pub shared: &'a Shared,
    pub member_id: u64,
    /// The raft index the scraping shard has applied (every shard applies the same entries).
    pub applied: u64,
    pub server_version: &'a str,
    pub cluster_version: &'a str,
    /// The scraping shard's store counters: its writes are every member's writes (each shard
    /// applies them all); its reads are replaced by `reads`.
    pub store: &'a crate::store::StoreStats,
    /// Successful and failed reads of every shard.
    pub reads: (u64, u64),
    /// Traffic with each peer, the peers' round-trip histogram and snapshot send durations.
    pub peers: Vec<(u64, PeerTraffic)>,
    pub round_trips: &'a PeerRoundTrips,
    pub snapshot_sends: &'a PeerRoundTrips,
}

fn gauge(r: &prometheus::Registry, name: &str, help: &str, value: i64) {
    let g = IntGauge::with_opts(Opts::new(name, help)).expect("valid gauge");
    g.set(value);
    register(r, g);
}

fn counter(r: &prometheus::Registry, name: &str, help: &str, value: u64) {
    let c = IntCounter::with_opts(Opts::new(name, help)).expect("valid counter");
    c.inc_by(value);
    register(r, c);
}

/// A gauge set to 1 for one label value (etcd's way of exporting a version or an ID).
fn info(r: &prometheus::Registry, name: &str, help: &str, label: &str, value: &str) {
    let g = IntGaugeVec::new(Opts::new(name, help), &[label]).expect("valid gauge");
    g.with_label_values(&[value]).set(1);
    register(r, g);
}

fn register(r: &prometheus::Registry, c: impl Collector + 'static) {
    // Names are fixed and distinct: registering cannot fail.
    let _ = r.register(Box::new(c));
}

/// The process's own families, a member's and a proxy's alike: `os_fd_used`, `os_fd_limit`
/// and `process_*` (CPU, descriptors, memory, start time).
fn process_families(r: &prometheus::Registry) {
    gauge(
        r,
        "os_fd_used",
        "The number of used file descriptors.",
        open_fds(),
    );
    gauge(r, "os_fd_limit", "The file descriptor limit.", fd_limit());
    register(
        r,
        prometheus::process_collector::ProcessCollector::for_self(),
    );
}

fn open_fds() -> i64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as i64)
}

/// The soft open-files limit.
pub fn fd_limit() -> i64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    lim.rlim_cur as i64
}

/// A counter per label value, only for the values seen (as a Go vector shows them).
fn counter_vec(
    r: &prometheus::Registry,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) {
    if values.iter().all(|(_, v)| *v == 0) {
        return;
    }
    let c = prometheus::IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid counter");
    for (value, n) in values.iter().filter(|(_, n)| *n > 0) {
        c.with_label_values(&[value]).inc_by(*n);
    }
    register(r, c);
}

/// etcd's `etcd_debugging_store_*`. tern does not tell recursive reads apart: every read
/// counts under `get`.
fn store_families(r: &prometheus::Registry, s: &Scrape<'_>) {
    let st = s.store;
    counter_vec(
        r,
        "etcd_debugging_store_reads_total",
        "Total number of reads action by (get/getRecursive), local to this member.",
        "action",
        &[("get", s.reads.0)],
    );
    counter_vec(
        r,
        "etcd_debugging_store_reads_failed_total",
        "Failed read actions by (get/getRecursive), local to this member.",
        "action",
        &[("get", s.reads.1)],
    );
    counter_vec(
        r,
        "etcd_debugging_store_writes_total",
        "Total number of writes (e.g. set/compareAndDelete) seen by this member.",
        "action",
        &[
            ("set", st.sets_success),
            ("create", st.create_success),
            ("update", st.update_success),
            ("delete", st.delete_success),
            ("compareAndSwap", st.compare_and_swap_success),
            ("compareAndDelete", st.compare_and_delete_success),
        ],
    );
    counter_vec(
        r,
        "etcd_debugging_store_writes_failed_total",
        "Failed write actions (e.g. set/compareAndDelete), seen by this member.",
        "action",
        &[
            ("set", st.sets_fail),
            ("create", st.create_fail),
            ("update", st.update_fail),
            ("delete", st.delete_fail),
            ("compareAndSwap", st.compare_and_swap_fail),
            ("compareAndDelete", st.compare_and_delete_fail),
        ],
    );
    counter(
        r,
        "etcd_debugging_store_expires_total",
        "Total number of expired keys.",
        st.expire_count,
    );
    counter(
        r,
        "etcd_debugging_store_watch_requests_total",
        "Total number of incoming watch requests (new or reestablished).",
        http::watch_requests(&s.shared.http),
    );
    gauge(
        r,
        "etcd_debugging_store_watchers",
        "Count of currently active watchers.",
        s.shared.total_watchers() as i64,
    );
}

/// etcd's `etcd_network_*` families for peer traffic.
fn network_families(r: &prometheus::Registry, s: &Scrape<'_>) {
    let local = crate::cluster::id_hex(s.member_id);
    let per_peer = |name: &str, help: &str, label: &str, value: fn(&PeerTraffic) -> u64| {
        let c =
            prometheus::IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid counter");
        let mut any = false;
        for (id, t) in &s.peers {
            let v = value(t);
            if v > 0 {
                c.with_label_values(&[&crate::cluster::id_hex(*id)])
                    .inc_by(v);
                any = true;
            }
        }
        if any {
            register(r, c);
        }
    };
    per_peer(
        "etcd_network_peer_sent_bytes_total",
        "The total number of bytes sent to peers.",
        "To",
        |t| t.sent_bytes,
    );
    per_peer(
        "etcd_network_peer_received_bytes_total",
        "The total number of bytes received from peers.",
        "From",
        |t| t.received_bytes,
    );
    per_peer(
        "etcd_network_peer_sent_failures_total",
        "The total number of send failures from peers.",
        "To",
        |t| t.sent_failures,
    );
    per_peer(
        "etcd_network_peer_received_failures_total",
        "The total number of receive failures from peers.",
        "From",
        |t| t.received_failures,
    );
    per_peer(
        "etcd_network_snapshot_send_success",
        "Total number of successful snapshot sends",
        "To",
        |t| t.snapshots_sent,
    );
    per_peer(
        "etcd_network_snapshot_send_failures",
        "Total number of snapshot send failures",
        "To",
        |t| t.snapshot_send_failures,
    );
    per_peer(
        "etcd_network_snapshot_receive_success",
        "Total number of successful snapshot receives",
        "From",
        |t| t.snapshots_received,
    );
    per_peer(
        "etcd_network_snapshot_receive_failures",
        "Total number of snapshot receive failures",
        "From",
        |t| t.snapshot_receive_failures,
    );
    let pair = ["Local", "Remote"];
    let active = IntGaugeVec::new(
        Opts::new(
            "etcd_network_active_peers",
            "The current number of active peer connections.",
        ),
        &pair,
    )
    .expect("valid gauge");
    let disconnected = prometheus::IntCounterVec::new(
        Opts::new(
            "etcd_network_disconnected_peers_total",
            "The total number of disconnected peers.",
        ),
        &pair,
    )
    .expect("valid counter");
    let (mut any_active, mut any_disconnect) = (false, false);
    for (id, t) in &s.peers {
        let remote = crate::cluster::id_hex(*id);
        if t.active {
            active.with_label_values(&[&local, &remote]).set(1);
            any_active = true;
        }
        if t.disconnects > 0 {
            disconnected
                .with_label_values(&[&local, &remote])
                .inc_by(t.disconnects);
            any_disconnect = true;
        }
    }
    if any_active {
        register(r, active);
    }
    if any_disconnect {
        register(r, disconnected);
    }
    register(r, s.round_trips.0.clone());
    register(r, s.snapshot_sends.0.clone());
}

/// The exposition text of one scrape.
pub fn render(s: &Scrape<'_>) -> String {
    let r = prometheus::Registry::new();
    let raft = &s.shared.raft;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    gauge(
        &r,
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not.",
        i64::from(load(&raft.leader) != 0),
    );
    gauge(
        &r,
        "etcd_server_is_leader",
        "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        i64::from(raft.is_leader.load(Ordering::Relaxed)),
    );
    gauge(
        &r,
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed.",
        load(&raft.commit) as i64,
    );
    gauge(
        &r,
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied.",
        s.applied as i64,
    );
    gauge(
        &r,
        "etcd_server_proposals_pending",
        "The current number of pending proposals to commit.",
        s.shared.pending_proposals() as i64,
    );
    info(
        &r,
        "etcd_server_id",
        "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
        "server_id",
        &crate::cluster::id_hex(s.member_id),
    );
    info(
        &r,
        "etcd_server_version",
        "Which version is running. 1 for 'server_version' label with current version.",
        "server_version",
        s.server_version,
    );
    info(
        &r,
        "etcd_cluster_version",
        "Which version is running. 1 for 'cluster_version' label with current cluster version",
        "cluster_version",
        s.cluster_version,
    );
    // etcd's plain server counters: (name, help, value).
    let counters = [
        (
            "etcd_server_leader_changes_seen_total",
            "The number of leader changes seen.",
            &raft.leader_changes,
        ),
        (
            "etcd_server_proposals_failed_total",
            "The total number of failed proposals seen.",
            &raft.proposals_failed,
        ),
        (
            "etcd_server_read_indexes_failed_total",
            "The total number of failed read indexes seen.",
            &raft.read_indexes_failed,
        ),
        (
            "etcd_server_health_success",
            "The total number of successful health checks",
            &raft.health_success,
        ),
        (
            "etcd_server_health_failures",
            "The total number of failed health checks",
            &raft.health_failures,
        ),
        (
            "etcd_server_heartbeat_send_failures_total",
            "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
            &raft.heartbeat_send_failures,
        ),
        (
            "etcd_server_slow_apply_total",
            "The total number of slow apply requests (likely overloaded from slow disk).",
            &raft.slow_applies,
        ),
    ];
    for (name, help, value) in counters {
        counter(&r, name, help, load(value));
    }
    store_families(&r, s);
    network_families(&r, s);
    register(&r, raft.wal_sync_seconds.0 .0.clone());
    register(&r, raft.snap_save.fsync.0.clone());
    register(&r, raft.snap_save.total.0.clone());
    // A gauge in etcd 3.4, kept so.
    gauge(
        &r,
        "etcd_disk_wal_write_bytes_total",
        "Total number of bytes written in WAL.",
        load(&raft.wal_write_bytes) as i64,
    );
    process_families(&r);

    // tern's own.
    register(&r, raft.wal_sync_entries.0.clone());
    let per_shard = |name: &str, help: &str, values: &mut dyn Iterator<Item = u64>| {
        let g = IntGaugeVec::new(Opts::new(name, help), &["shard"]).expect("valid gauge");
        for (i, v) in values.enumerate() {
            g.with_label_values(&[&i.to_string()]).set(v as i64);
        }
        register(&r, g);
    };
    per_shard(
        "tern_shard_requests_total",
        "Keys-API requests each shard (executor thread) has received since start.",
        &mut s.shared.http.iter().map(http::ShardHttp::received_total),
    );
    per_shard(
        "tern_shard_watchers",
        "Watchers held by each shard's connections.",
        &mut (0..s.shared.nshards).map(|i| s.shared.watchers_on(i)),
    );
    per_shard(
        "tern_shard_client_connections",
        "Client connections each shard serves (shard 0 takes the first few: it runs raft).",
        &mut s
            .shared
            .connections
            .iter()
            .map(|c| c.0.load(Ordering::Relaxed)),
    );
    per_shard(
        "tern_shard_proposals_pending",
        "Writes proposed on each shard and not yet answered.",
        &mut (0..s.shared.nshards).map(|i| s.shared.pending_on(i)),
    );
    counter(
        &r,
        "tern_wal_fsyncs_total",
        "WAL fdatasync calls since start.",
        load(&raft.wal_fsyncs),
    );
    counter(
        &r,
        "tern_wal_entries_total",
        "Raft entries appended to the WAL since start.",
        load(&raft.wal_entries),
    );
    counter(
        &r,
        "tern_snapshots_total",
        "Store snapshots taken since start.",
        load(&raft.snapshots),
    );
    let stall = |a: &std::sync::atomic::AtomicU64| load(a) as f64 / 1e6;
    let float_gauge = |name: &str, help: &str, v: f64| {
        let g = prometheus::Gauge::with_opts(Opts::new(name, help)).expect("valid gauge");
        g.set(v);
        register(&r, g);
    };
    let total = prometheus::Counter::with_opts(Opts::new(
        "tern_snapshot_stall_seconds_total",
        "Time the raft loop spent serialising snapshots.",
    ))
    .expect("valid counter");
    total.inc_by(stall(&raft.snapshot_stall_micros_total));
    register(&r, total);
    float_gauge(
        "tern_snapshot_stall_seconds_max",
        "Longest single snapshot stall of the raft loop.",
        stall(&raft.snapshot_stall_micros_max),
    );

    let mut families = r.gather();
    families.extend(http::families(&s.shared.http));
    encode_families(families)
}

/// The exposition text of a registry's families.
fn encode(r: &prometheus::Registry) -> String {
    encode_families(r.gather())
}

fn encode_families(mut families: Vec<prometheus::proto::MetricFamily>) -> String {
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out = Vec::new();
    let _ = prometheus::TextEncoder::new().encode(&families, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_family_is_rendered_once() {
        let shared = Shared::new(2, Duration::from_secs(5), 1000);
        shared
            .raft
            .wal_sync_seconds
            .0
            .observe(Duration::from_millis(3));
        let text = render(&Scrape {
            shared: &shared,
            member_id: 0x8e9e05c52164694d,
            applied: 7,
            server_version: "2.3.7",
            cluster_version: "2.3.0",
            store: &crate::store::StoreStats::default(),
            reads: (0, 0),
            peers: Vec::new(),
            round_trips: &PeerRoundTrips::default(),
            snapshot_sends: &PeerRoundTrips::snapshot_sends(),
        });
        for name in ETCD_FAMILIES {
            assert_eq!(
                text.matches(&format!("# TYPE {name} ")).count(),
                1,
                "{name} in:\n{text}"
            );
        }
        assert!(
            text.contains("etcd_server_id{server_id=\"8e9e05c52164694d\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("etcd_server_proposals_applied_total 7"),
            "{text}"
        );
        assert!(text.contains("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.004\"} 1"));
        assert!(text.contains("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.002\"} 0"));
    }
}
