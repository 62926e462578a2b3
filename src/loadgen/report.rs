//! What a run measured, and its two renderings: a text table row and JSON.

use hdrhistogram::Histogram;

use super::{Op, Spec};

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// p50/p90/p99/max of a histogram of latencies recorded in microseconds, in milliseconds
/// (all zero for an empty histogram).
pub fn percentiles(micros: &Histogram<u64>) -> Percentiles {
    if micros.is_empty() {
        return Percentiles::default();
    }
    let ms = |v: u64| v as f64 / 1000.0;
    Percentiles {
        p50: ms(micros.value_at_quantile(0.50)),
        p90: ms(micros.value_at_quantile(0.90)),
        p99: ms(micros.value_at_quantile(0.99)),
        max: ms(micros.max()),
    }
}

/// The outcome of one [`super::run`].
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub op: Op,
    pub value_size: usize,
    pub clients: usize,
    pub threads: usize,
    pub endpoints: usize,
    /// Requests answered with a 2xx status.
    pub requests: u64,
    /// Requests that failed: a non-2xx status, an I/O error or a timeout.
    pub errors: u64,
    /// From the moment every client was connected until the last one finished.
    pub elapsed_secs: f64,
    /// Successful requests per second.
    pub rps: f64,
    /// Latencies of the successful requests, in milliseconds.
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    /// The first error seen, for diagnosis.
    pub first_error: Option<String>,
}

impl Report {
    /// Builds a report from what the clients gathered.
    pub fn new(
        spec: &Spec,
        micros: &Histogram<u64>,
        errors: u64,
        elapsed_secs: f64,
        first_error: Option<String>,
    ) -> Report {
        let requests = micros.len();
        let p = percentiles(micros);
        Report {
            op: spec.op,
            value_size: spec.value_size,
            clients: spec.clients,
            threads: spec.threads,
            endpoints: spec.endpoints.len(),
            requests,
            errors,
            elapsed_secs,
            rps: if elapsed_secs > 0.0 {
                requests as f64 / elapsed_secs
            } else {
                0.0
            },
            p50: p.p50,
            p90: p.p90,
            p99: p.p99,
            max: p.max,
            first_error,
        }
    }

    /// The header line of [`Report::table_row`].
    pub fn table_header() -> String {
        format!(
            "{:<4} {:>6} {:>7} {:>9} {:>10} {:>7} {:>11} {:>8} {:>8} {:>8} {:>8}",
            "op",
            "bytes",
            "clients",
            "endpoints",
            "requests",
            "errors",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms"
        )
    }

    /// One line of the text table.
    pub fn table_row(&self) -> String {
        format!(
            "{:<4} {:>6} {:>7} {:>9} {:>10} {:>7} {:>11.0} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            self.op.as_str(),
            self.value_size,
            self.clients,
            self.endpoints,
            self.requests,
            self.errors,
            self.rps,
            self.p50,
            self.p90,
            self.p99,
            self.max
        )
    }

    /// The report as a JSON object (latencies in `*_ms` fields).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "op": self.op.as_str(),
            "value_size": self.value_size,
            "clients": self.clients,
            "threads": self.threads,
            "endpoints": self.endpoints,
            "requests": self.requests,
            "errors": self.errors,
            "elapsed_secs": self.elapsed_secs,
            "rps": self.rps,
            "p50_ms": self.p50,
            "p90_ms": self.p90,
            "p99_ms": self.p99,
            "max_ms": self.max,
            "first_error": self.first_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::Spec;

    fn hist(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
        for v in values {
            h.record(v).unwrap();
        }
        h
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b.abs() * 0.002 + 1e-9
    }

    #[test]
    fn percentiles_of_1_to_1000_micros() {
        let p = percentiles(&hist(1..=1000));
        assert!(close(p.p50, 0.500), "{p:?}");
        assert!(close(p.p90, 0.900), "{p:?}");
        assert!(close(p.p99, 0.990), "{p:?}");
        assert!(close(p.max, 1.000), "{p:?}");
    }

    #[test]
    fn percentiles_see_a_slow_tail() {
        // 98 fast requests (200 µs) and 2 slow ones (50 ms): p99 is in the tail.
        let p = percentiles(&hist(std::iter::repeat_n(200, 98).chain([50_000, 50_000])));
        assert!(close(p.p50, 0.2) && close(p.p90, 0.2), "{p:?}");
        assert!(close(p.p99, 50.0) && close(p.max, 50.0), "{p:?}");
    }

    #[test]
    fn empty_histogram_gives_zeros() {
        assert_eq!(percentiles(&hist([])), Percentiles::default());
    }

    fn report() -> Report {
        let mut spec = Spec::new(
            [
                "127.0.0.1:2379".parse::<std::net::SocketAddr>().unwrap(),
                "127.0.0.2:2379".parse().unwrap(),
            ],
            Op::Put,
        );
        spec.value_size = 256;
        spec.clients = 64;
        Report::new(
            &spec,
            &hist([500, 1000, 1500, 2000]),
            2,
            0.5,
            Some("x".into()),
        )
    }

    #[test]
    fn report_counts_rate_and_renders_a_row_under_its_header() {
        let r = report();
        assert_eq!((r.requests, r.errors, r.endpoints), (4, 2, 2));
        assert!(close(r.rps, 8.0));
        let header = Report::table_header();
        let row = r.table_row();
        assert_eq!(header.len(), row.len(), "\n{header}\n{row}");
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cols,
            ["PUT", "256", "64", "2", "4", "2", "8", "1.000", "2.000", "2.000", "2.000"]
        );
    }

    #[test]
    fn report_json_has_every_field() {
        let j = report().to_json();
        assert_eq!(j["op"], "PUT");
        assert_eq!(j["value_size"], 256);
        assert_eq!(j["requests"], 4);
        assert_eq!(j["errors"], 2);
        assert_eq!(j["p50_ms"], 1.0);
        assert_eq!(j["max_ms"], 2.0);
        assert_eq!(j["first_error"], "x");
        let text = serde_json::to_string(&j).unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
    }
}
