//! Peer traffic figures for `/v2/stats/self` and `/v2/stats/leader` (etcd's ServerStats and
//! LeaderStats): append requests sent and received, message and byte rates, and per follower
//! the success/failure counts and round-trip latency of message batches; and per peer the
//! figures `/metrics` shows under etcd's `etcd_network_*` names (bytes, failures, whether the
//! link is up, round trips).
//!
//! Written by the transport on shard 0, read by the stats endpoints on any shard, so it is
//! `Sync` (a mutex held for a few additions per batch). Knows nothing about raft or HTTP.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::metrics::{DurationHistogram, PeerRoundTrips, PeerTraffic};

/// How far back the send/receive rates look.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Latency figures of one follower, in milliseconds (etcd's `LatencyStats`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latency {
    pub current: f64,
    pub average: f64,
    pub standard_deviation: f64,
    pub minimum: f64,
    pub maximum: f64,
    count: u64,
    sum: f64,
    sum_sq: f64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FollowerStats {
    pub success: u64,
    pub fail: u64,
    pub latency: Latency,
}

impl FollowerStats {
    fn sample_latency(&mut self, round_trip: Duration) {
        let ms = round_trip.as_secs_f64() * 1000.0;
        let l = &mut self.latency;
        l.current = ms;
        l.count += 1;
        l.sum += ms;
        l.sum_sq += ms * ms;
        l.average = l.sum / l.count as f64;
        l.standard_deviation = (l.sum_sq / l.count as f64 - l.average * l.average)
            .max(0.0)
            .sqrt();
        l.minimum = if l.count == 1 { ms } else { l.minimum.min(ms) };
        l.maximum = l.maximum.max(ms);
    }
}

#[derive(Debug, Default)]
struct Rate {
    /// (when, messages, bytes) of recent batches.
    samples: VecDeque<(Instant, u64, u64)>,
}

impl Rate {
    fn add(&mut self, now: Instant, msgs: u64, bytes: u64) {
        self.samples.push_back((now, msgs, bytes));
        self.trim(now);
    }

    fn trim(&mut self, now: Instant) {
        while self
            .samples
            .front()
            .is_some_and(|(t, _, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// (messages per second, bytes per second) over the window.
    fn per_second(&mut self, now: Instant) -> (f64, f64) {
        self.trim(now);
        let (m, b) = self
            .samples
            .iter()
            .fold((0, 0), |(m, b), (_, mm, bb)| (m + mm, b + bb));
        let secs = RATE_WINDOW.as_secs_f64();
        (m as f64 / secs, b as f64 / secs)
    }
}

#[derive(Default)]
struct Inner {
    send_append: u64,
    recv_append: u64,
    send: Rate,
    recv: Rate,
    followers: BTreeMap<u64, FollowerStats>,
    traffic: BTreeMap<u64, PeerTraffic>,
    /// Each peer's round-trip histogram (a child of [`TransportStats::round_trips`]).
    round_trip: BTreeMap<u64, DurationHistogram>,
}

impl Inner {
    /// What every delivery to `to` counts: appends (a follower's successes), the send rate and
    /// the peer's bytes.
    fn count_sent(&mut self, now: Instant, to: u64, msgs: u64, appends: u64, bytes: u64) {
        self.send_append += appends;
        self.send.add(now, msgs, bytes);
        self.traffic.entry(to).or_default().sent_bytes += bytes;
        self.followers.entry(to).or_default().success += appends;
    }
}

/// A snapshot of the figures, for rendering.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub send_append_requests: u64,
    pub recv_append_requests: u64,
    pub send_pkg_rate: f64,
    pub send_bandwidth_rate: f64,
    pub recv_pkg_rate: f64,
    pub recv_bandwidth_rate: f64,
}

pub struct TransportStats {
    inner: Mutex<Inner>,
    round_trips: PeerRoundTrips,
    snapshot_sends: PeerRoundTrips,
}

impl Default for TransportStats {
    fn default() -> Self {
        TransportStats {
            inner: Mutex::default(),
            round_trips: PeerRoundTrips::default(),
            snapshot_sends: PeerRoundTrips::snapshot_sends(),
        }
    }
}

impl TransportStats {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        match self.inner.lock() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// A batch of `msgs` messages (`appends` of them append requests) went out to `to`; like
    /// etcd, a follower's success count and latency follow the append requests.
    pub fn sent(&self, to: u64, msgs: u64, appends: u64, bytes: u64, round_trip: Duration) {
        let now = Instant::now();
        self.with(|s| {
            s.count_sent(now, to, msgs, appends, bytes);
            s.round_trip
                .entry(to)
                .or_insert_with(|| self.round_trips.peer(to))
                .observe(round_trip);
            if appends > 0 {
                s.followers
                    .entry(to)
                    .or_default()
                    .sample_latency(round_trip);
            }
        });
    }

    /// A stream carried `msgs` messages (`appends` of them append requests) to `to`. A
    /// stream has no answer to time, so the follower's latency comes from the probes
    /// ([`TransportStats::probed`]).
    pub fn streamed(&self, to: u64, msgs: u64, appends: u64, bytes: u64) {
        let now = Instant::now();
        self.with(|s| s.count_sent(now, to, msgs, appends, bytes));
    }

    /// The empty batch a link sends now and then came back from `to` after `round_trip`.
    /// While a stream carries the link's messages (`streaming`), it is also the follower's
    /// latency sample.
    pub fn probed(&self, to: u64, round_trip: Duration, streaming: bool) {
        self.with(|s| {
            s.round_trip
                .entry(to)
                .or_insert_with(|| self.round_trips.peer(to))
                .observe(round_trip);
            if streaming {
                s.followers
                    .entry(to)
                    .or_default()
                    .sample_latency(round_trip);
            }
        });
    }

    /// A batch to `to` could not be delivered.
    pub fn send_failed(&self, to: u64) {
        self.with(|s| {
            s.followers.entry(to).or_default().fail += 1;
            s.traffic.entry(to).or_default().sent_failures += 1;
        });
    }

    /// Messages from peer `from` arrived.
    pub fn received(&self, from: u64, msgs: u64, appends: u64, bytes: u64) {
        let now = Instant::now();
        self.with(|s| {
            s.recv_append += appends;
            s.recv.add(now, msgs, bytes);
            s.traffic.entry(from).or_default().received_bytes += bytes;
        });
    }

    /// A request from peer `from` could not be taken (a malformed batch or snapshot).
    pub fn receive_failed(&self, from: u64) {
        self.with(|s| s.traffic.entry(from).or_default().received_failures += 1);
    }

    /// A snapshot went to `to` (in `took`), or failed to.
    pub fn snapshot_sent(&self, to: u64, ok: bool, took: Duration) {
        self.with(|s| {
            let t = s.traffic.entry(to).or_default();
            if ok {
                t.snapshots_sent += 1;
            } else {
                t.snapshot_send_failures += 1;
            }
        });
        if ok {
            self.snapshot_sends.peer(to).observe(took);
        }
    }

    /// A snapshot from `from` arrived whole, or could not be taken.
    pub fn snapshot_received(&self, from: u64, ok: bool) {
        self.with(|s| {
            let t = s.traffic.entry(from).or_default();
            if ok {
                t.snapshots_received += 1;
            } else {
                t.snapshot_receive_failures += 1;
            }
        });
    }

    /// Whether messages reach `peer` now; an active link that breaks counts a disconnect.
    pub fn set_active(&self, peer: u64, active: bool) {
        self.with(|s| {
            let t = s.traffic.entry(peer).or_default();
            if t.active && !active {
                t.disconnects += 1;
            }
            t.active = active;
        });
    }

    /// Forget a member that left the cluster.
    pub fn remove_follower(&self, id: u64) {
        self.with(|s| {
            s.followers.remove(&id);
            s.traffic.remove(&id);
            s.round_trip.remove(&id);
        });
        self.round_trips.remove(id);
        self.snapshot_sends.remove(id);
    }

    /// Traffic per peer, for `/metrics`.
    pub fn traffic(&self) -> Vec<(u64, PeerTraffic)> {
        self.with(|s| s.traffic.iter().map(|(k, v)| (*k, *v)).collect())
    }

    /// Round trips of message batches per peer, for `/metrics`.
    pub fn round_trips(&self) -> &PeerRoundTrips {
        &self.round_trips
    }

    /// Durations of snapshot sends per peer, for `/metrics`.
    pub fn snapshot_sends(&self) -> &PeerRoundTrips {
        &self.snapshot_sends
    }

    pub fn figures(&self) -> Figures {
        let now = Instant::now();
        self.with(|s| {
            let (send_pkg_rate, send_bandwidth_rate) = s.send.per_second(now);
            let (recv_pkg_rate, recv_bandwidth_rate) = s.recv.per_second(now);
            Figures {
                send_append_requests: s.send_append,
                recv_append_requests: s.recv_append,
                send_pkg_rate,
                send_bandwidth_rate,
                recv_pkg_rate,
                recv_bandwidth_rate,
            }
        })
    }

    /// Per-follower figures, for the leader's `/v2/stats/leader`.
    pub fn followers(&self) -> Vec<(u64, FollowerStats)> {
        self.with(|s| s.followers.iter().map(|(k, v)| (*k, v.clone())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_appends_count_and_probes_give_their_latency() {
        let s = TransportStats::default();
        s.streamed(7, 4, 3, 400);
        // A probe of a link that batches is no latency sample; one of a streaming link is.
        s.probed(7, Duration::from_millis(9), false);
        s.probed(7, Duration::from_millis(2), true);
        let f = s.followers();
        let (id, st) = &f[0];
        assert_eq!((*id, st.success, st.fail), (7, 3, 0));
        assert_eq!((st.latency.minimum, st.latency.maximum), (2.0, 2.0));
        let fig = s.figures();
        assert_eq!(fig.send_append_requests, 3);
        assert_eq!((fig.send_pkg_rate, fig.send_bandwidth_rate), (4.0, 400.0));
        assert_eq!(s.traffic()[0].1.sent_bytes, 400);
    }

    #[test]
    fn latency_and_counts() {
        let s = TransportStats::default();
        s.sent(7, 3, 2, 100, Duration::from_millis(2));
        s.sent(7, 1, 1, 50, Duration::from_millis(4));
        s.sent(7, 1, 0, 10, Duration::from_millis(50));
        s.send_failed(7);
        let f = s.followers();
        assert_eq!(f.len(), 1);
        let (id, st) = &f[0];
        assert_eq!((*id, st.success, st.fail), (7, 3, 1));
        assert!((st.latency.average - 3.0).abs() < 1e-9);
        assert!((st.latency.standard_deviation - 1.0).abs() < 1e-9);
        assert_eq!((st.latency.minimum, st.latency.maximum), (2.0, 4.0));
        assert_eq!(st.latency.current, 4.0);
        s.received(9, 5, 4, 500);
        let fig = s.figures();
        assert_eq!((fig.send_append_requests, fig.recv_append_requests), (3, 4));
        assert_eq!((fig.send_pkg_rate, fig.send_bandwidth_rate), (5.0, 160.0));
        assert_eq!((fig.recv_pkg_rate, fig.recv_bandwidth_rate), (5.0, 500.0));
        s.set_active(7, true);
        s.set_active(7, false);
        s.set_active(7, false);
        let traffic = s.traffic();
        assert_eq!(
            traffic,
            vec![
                (
                    7,
                    PeerTraffic {
                        sent_bytes: 160,
                        sent_failures: 1,
                        disconnects: 1,
                        ..PeerTraffic::default()
                    }
                ),
                (
                    9,
                    PeerTraffic {
                        received_bytes: 500,
                        ..PeerTraffic::default()
                    }
                )
            ]
        );
        s.remove_follower(7);
        assert!(s.followers().is_empty());
        assert_eq!(s.traffic().len(), 1);
    }
}
