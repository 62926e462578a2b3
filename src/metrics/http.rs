//! etcd's `etcd_http_*` families for the keys API: requests received (parsed and allowed, not
//! watches), failed (by method and status code) and the latency of successful ones, by method
//! (`GET`, `QGET` for a quorum GET, `HEAD`, `PUT`, `POST`, `DELETE`), as etcd 3.4's v2 handler
//! reports them.
//!
//! Each shard counts into its own cache-line-aligned atomics (no lock, no sharing on the
//! request path); a scrape sums the shards into metric families. Knows nothing about HTTP
//! parsing: the keys handler says what happened.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus::proto::{Bucket, Counter, Histogram, LabelPair, Metric, MetricFamily, MetricType};

/// The method labels etcd uses.
pub const METHODS: [&str; 6] = ["GET", "QGET", "HEAD", "PUT", "POST", "DELETE"];
/// Status codes counted by their own label; any other counts as 500.
const CODES: [u16; 7] = [400, 401, 403, 404, 412, 500, 503];
/// etcd's buckets: 0.5 ms doubling, 13 of them.
const BUCKETS: usize = 13;

fn bucket_bound(i: usize) -> f64 {
    0.0005 * f64::from(1u32 << i)
}

/// One shard's counters.
#[repr(align(64))]
#[derive(Default)]
pub struct ShardHttp {
    received: [AtomicU64; METHODS.len()],
    failed: [[AtomicU64; CODES.len()]; METHODS.len()],
    /// Per method: counts per bucket (not cumulative), then the count above the last bound.
    latency: [[AtomicU64; BUCKETS + 1]; METHODS.len()],
    latency_sum_nanos: [AtomicU64; METHODS.len()],
    watch_requests: AtomicU64,
}

/// Index of a method label in [`METHODS`].
pub fn method_index(method: &str, quorum: bool) -> Option<usize> {
    let label = if method == "GET" && quorum {
        "QGET"
    } else {
        method
    };
    METHODS.iter().position(|m| *m == label)
}

impl ShardHttp {
    /// Requests of every method this shard received.
    pub fn received_total(&self) -> u64 {
        self.received
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .sum()
    }

    pub fn received(&self, method: usize) {
        self.received[method].fetch_add(1, Ordering::Relaxed);
    }

    pub fn failed(&self, method: usize, status: u16) {
        let code = CODES
            .iter()
            .position(|c| *c == status)
            .unwrap_or(CODES.iter().position(|c| *c == 500).unwrap_or(0));
        self.failed[method][code].fetch_add(1, Ordering::Relaxed);
    }

    /// A `wait=true` request (etcd_debugging_store_watch_requests_total).
    pub fn watch_requested(&self) {
        self.watch_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn succeeded(&self, method: usize, took: Duration) {
        let secs = took.as_secs_f64();
        let bucket = (0..BUCKETS)
            .find(|&i| secs <= bucket_bound(i))
            .unwrap_or(BUCKETS);
        self.latency[method][bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_nanos[method].fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// Watch requests of every shard.
pub fn watch_requests(shards: &[ShardHttp]) -> u64 {
    shards
        .iter()
        .map(|s| s.watch_requests.load(Ordering::Relaxed))
        .sum()
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut l = LabelPair::default();
    l.set_name(name.to_string());
    l.set_value(value.to_string());
    l
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> Option<MetricFamily> {
    if metrics.is_empty() {
        // Like a Go vector no label combination was used with yet: not exported.
        return None;
    }
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(kind);
    f.set_metric(metrics);
    Some(f)
}

fn counter(labels: Vec<LabelPair>, value: u64) -> Metric {
    let mut c = Counter::default();
    c.set_value(value as f64);
    let mut m = Metric::default();
    m.set_label(labels);
    m.set_counter(c);
    m
}

/// The three families, summed over `shards`.
pub fn families(shards: &[ShardHttp]) -> Vec<MetricFamily> {
    let sum = |f: &dyn Fn(&ShardHttp) -> u64| shards.iter().map(f).sum::<u64>();
    let mut received = Vec::new();
    let mut failed = Vec::new();
    let mut latency = Vec::new();
    for (mi, method) in METHODS.iter().enumerate() {
        let n = sum(&|s| s.received[mi].load(Ordering::Relaxed));
        if n > 0 {
            received.push(counter(vec![label("method", method)], n));
        }
        for (ci, code) in CODES.iter().enumerate() {
            let n = sum(&|s| s.failed[mi][ci].load(Ordering::Relaxed));
            if n > 0 {
                let labels = vec![label("code", &code.to_string()), label("method", method)];
                failed.push(counter(labels, n));
            }
        }
        let counts: Vec<u64> = (0..=BUCKETS)
            .map(|b| sum(&|s| s.latency[mi][b].load(Ordering::Relaxed)))
            .collect();
        let total: u64 = counts.iter().sum();
        if total > 0 {
            let mut cumulative = 0;
            let buckets = (0..BUCKETS)
                .map(|b| {
                    cumulative += counts[b];
                    let mut bucket = Bucket::default();
                    bucket.set_upper_bound(bucket_bound(b));
                    bucket.set_cumulative_count(cumulative);
                    bucket
                })
                .collect();
            let mut h = Histogram::default();
            h.set_bucket(buckets);
            h.set_sample_count(total);
            h.set_sample_sum(
                sum(&|s| s.latency_sum_nanos[mi].load(Ordering::Relaxed)) as f64 / 1e9,
            );
            let mut m = Metric::default();
            m.set_label(vec![label("method", method)]);
            m.set_histogram(h);
            latency.push(m);
        }
    }
    [
        family(
            "etcd_http_received_total",
            "Counter of requests received into the system (successfully parsed and authd).",
            MetricType::COUNTER,
            received,
        ),
        family(
            "etcd_http_failed_total",
            "Counter of handle failures of requests (non-watches), by method (GET/PUT etc.) and code (400, 500 etc.).",
            MetricType::COUNTER,
            failed,
        ),
        family(
            "etcd_http_successful_duration_seconds",
            "Bucketed histogram of processing time (s) of successfully handled requests (non-watches), by method (GET/PUT etc.).",
            MetricType::HISTOGRAM,
            latency,
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_summed_into_etcds_families() {
        let shards: Vec<ShardHttp> = (0..2).map(|_| ShardHttp::default()).collect();
        assert!(
            families(&shards).is_empty(),
            "nothing used: nothing exported"
        );
        let get = method_index("GET", false).unwrap();
        let qget = method_index("GET", true).unwrap();
        assert_eq!(METHODS[qget], "QGET");
        shards[0].received(get);
        shards[1].received(get);
        shards[1].received(qget);
        shards[0].failed(get, 404);
        shards[1].failed(get, 418);
        shards[0].succeeded(get, Duration::from_micros(300));
        shards[1].succeeded(get, Duration::from_millis(3));
        let f = families(&shards);
        let names: Vec<&str> = f.iter().map(|f| f.name()).collect();
        assert_eq!(
            names,
            [
                "etcd_http_received_total",
                "etcd_http_failed_total",
                "etcd_http_successful_duration_seconds"
            ]
        );
        let received: Vec<f64> = f[0]
            .get_metric()
            .iter()
            .map(|m| m.get_counter().get_value())
            .collect();
        assert_eq!(received, [2.0, 1.0]);
        assert_eq!(f[1].get_metric().len(), 2, "404, and 418 counted as 500");
        let h = f[2].get_metric()[0].get_histogram();
        assert_eq!(h.get_sample_count(), 2);
        assert_eq!(h.get_bucket()[0].cumulative_count(), 1, "300 µs ≤ 0.5 ms");
        assert_eq!(h.get_bucket()[3].cumulative_count(), 2, "3 ms ≤ 4 ms");
    }
}
