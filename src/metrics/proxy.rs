//! The proxy's `/metrics`: etcd's `etcd_proxy_*` families (its `proxy/httpproxy/metrics.go`:
//! names, help texts, labels and buckets), plus the process and file-descriptor families a
//! member exports too.
//!
//! The vectors are the prometheus crate's own (atomic counters; a label lookup takes an
//! uncontended read lock), shared by every proxy shard. Knows nothing about forwarding.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

use super::register;

/// The proxy's families.
pub struct ProxyMetrics {
    requests: IntCounterVec,
    handled: IntCounterVec,
    dropped: IntCounterVec,
    handling: HistogramVec,
}

/// The families etcd's v2 proxy exports.
pub const ETCD_PROXY_FAMILIES: &[&str] = &[
    "etcd_proxy_requests_total",
    "etcd_proxy_handled_total",
    "etcd_proxy_dropped_total",
    "etcd_proxy_handling_duration_seconds",
];

impl Default for ProxyMetrics {
    fn default() -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter")
        };
        ProxyMetrics {
            requests: counter(
                "etcd_proxy_requests_total",
                "Counter requests incoming by method.",
                &["method"],
            ),
            handled: counter(
                "etcd_proxy_handled_total",
                "Counter of requests fully handled (by authoratitave servers)",
                &["method", "code"],
            ),
            dropped: counter(
                "etcd_proxy_dropped_total",
                "Counter of requests dropped on the proxy.",
                &["method", "proxying_error"],
            ),
            handling: HistogramVec::new(
                HistogramOpts::new(
                    "etcd_proxy_handling_duration_seconds",
                    "Bucketed histogram of handling time of successful events (non-watches), \
                     by method (GET/PUT etc.).",
                )
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 13).expect("valid buckets")),
                &["method"],
            )
            .expect("valid histogram"),
        }
    }
}

impl ProxyMetrics {
    pub fn requested(&self, method: &str) {
        self.requests.with_label_values(&[method]).inc();
    }

    pub fn handled(&self, method: &str, status: u16) {
        self.handled
            .with_label_values(&[method, &status.to_string()])
            .inc();
    }

    pub fn dropped(&self, method: &str, why: &str) {
        self.dropped.with_label_values(&[method, why]).inc();
    }

    pub fn took(&self, method: &str, took: Duration) {
        self.handling
            .with_label_values(&[method])
            .observe(took.as_secs_f64());
    }
}

/// The exposition text of one scrape of a proxy.
pub fn render(m: &ProxyMetrics) -> String {
    let r = prometheus::Registry::new();
    register(&r, m.requests.clone());
    register(&r, m.handled.clone());
    register(&r, m.dropped.clone());
    register(&r, m.handling.clone());
    super::process_families(&r);
    super::encode(&r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_appear_with_etcds_labels_once_used() {
        let m = ProxyMetrics::default();
        m.requested("GET");
        m.handled("GET", 200);
        m.dropped("PUT", "zero_endpoints");
        m.took("GET", Duration::from_millis(1));
        let text = render(&m);
        for family in ETCD_PROXY_FAMILIES {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family} in {text}"
            );
        }
        assert!(text.contains("etcd_proxy_handled_total{code=\"200\",method=\"GET\"} 1"));
        assert!(text.contains(
            "etcd_proxy_dropped_total{method=\"PUT\",proxying_error=\"zero_endpoints\"} 1"
        ));
    }
}
