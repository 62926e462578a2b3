//! Which member a proxied request goes to: the published endpoint list and each shard's view
//! of which endpoints failed.
//!
//! The refresher (one thread, [`super::refresh`]) publishes the members' client URLs, shuffled
//! once per refresh as etcd's proxy does (every request goes to the first available one, so a
//! client keeps reading from the member it wrote to between refreshes). Each shard keeps its
//! own [`Director`]: it picks up a new list by comparing an atomic generation per request (no
//! lock on the request path unless something changed). An endpoint that failed is left out
//! for `--proxy-failure-wait` by every shard, as by etcd's one director: the marks are
//! published the same way. Knows nothing about HTTP.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The endpoint list every shard reads, replaced as a whole by the refresher.
#[derive(Default)]
pub struct Published {
    generation: AtomicU64,
    endpoints: Mutex<Arc<Vec<String>>>,
    /// Set by a shard that found no endpoint available: the refresher looks again within a
    /// second instead of at its interval.
    starved: AtomicBool,
    /// Failed endpoints and until when they are left out; changes bump `generation`.
    failed: Mutex<HashMap<String, Instant>>,
}

impl Published {
    /// Publishes a new list (the refresher's order is kept).
    pub fn publish(&self, endpoints: Vec<String>) {
        *self.endpoints.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(endpoints);
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn failed(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The list as last published.
    pub fn current(&self) -> Arc<Vec<String>> {
        self.endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// True once (and clears it) when a shard found no endpoint since the last call.
    pub fn take_starved(&self) -> bool {
        self.starved.swap(false, Ordering::Relaxed)
    }
}

/// One shard's view: the endpoints in order, and until when failed ones are left out.
pub struct Director {
    published: Arc<Published>,
    generation: u64,
    endpoints: Arc<Vec<String>>,
    failed_until: HashMap<String, Instant>,
    failure_wait: Duration,
}

impl Director {
    pub fn new(published: Arc<Published>, failure_wait: Duration) -> Director {
        Director {
            published,
            generation: u64::MAX,
            endpoints: Arc::new(Vec::new()),
            failed_until: HashMap::new(),
            failure_wait,
        }
    }

    /// Every endpoint, available or not (`/v2/config/local/proxy`).
    pub fn all(&mut self) -> Arc<Vec<String>> {
        self.sync();
        self.endpoints.clone()
    }

    /// The endpoints to try, in order; empty when none is available.
    pub fn available(&mut self, now: Instant) -> Vec<String> {
        self.sync();
        if self.failed_until.values().any(|until| *until <= now) {
            let mut failed = self.published.failed();
            failed.retain(|url, until| {
                let waiting = *until > now;
                if !waiting {
                    tracing::info!("proxy: marked endpoint {url} available");
                }
                waiting
            });
            drop(failed);
            self.published.generation.fetch_add(1, Ordering::Release);
            self.sync();
        }
        let out: Vec<String> = self
            .endpoints
            .iter()
            .filter(|u| !self.failed_until.contains_key(*u))
            .cloned()
            .collect();
        if out.is_empty() {
            self.published.starved.store(true, Ordering::Relaxed);
        }
        out
    }

    /// `url` failed: every shard leaves it out for the failure wait.
    pub fn failed(&mut self, url: &str, now: Instant) {
        let mut failed = self.published.failed();
        if failed
            .insert(url.to_string(), now + self.failure_wait)
            .is_none()
        {
            tracing::info!("proxy: marked endpoint {url} unavailable");
        }
        drop(failed);
        self.published.generation.fetch_add(1, Ordering::Release);
        self.sync();
    }

    fn sync(&mut self) {
        let generation = self.published.generation.load(Ordering::Acquire);
        if generation != self.generation {
            self.generation = generation;
            self.endpoints = self.published.current();
            let endpoints = &self.endpoints;
            let mut failed = self.published.failed();
            failed.retain(|url, _| endpoints.contains(url));
            self.failed_until = failed.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_endpoints_are_left_out_for_the_failure_wait() {
        let published = Arc::new(Published::default());
        published.publish(vec!["http://a".into(), "http://b".into()]);
        let mut d = Director::new(published.clone(), Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(d.available(t0), ["http://a", "http://b"]);
        d.failed("http://a", t0);
        assert_eq!(d.available(t0 + Duration::from_secs(1)), ["http://b"]);
        d.failed("http://b", t0);
        assert!(d.available(t0 + Duration::from_secs(1)).is_empty());
        assert!(published.take_starved());
        assert!(!published.take_starved());
        assert_eq!(
            d.available(t0 + Duration::from_secs(6)),
            ["http://a", "http://b"]
        );
    }

    #[test]
    fn a_new_list_is_seen_and_forgets_members_that_left() {
        let published = Arc::new(Published::default());
        published.publish(vec!["http://a".into()]);
        let mut d = Director::new(published.clone(), Duration::from_secs(5));
        let t0 = Instant::now();
        d.failed("http://a", t0);
        assert!(d.available(t0).is_empty());
        published.publish(vec!["http://c".into(), "http://a".into()]);
        assert_eq!(d.available(t0), ["http://c"]);
        assert_eq!(*d.all(), ["http://c", "http://a"]);
        published.publish(vec!["http://b".into()]);
        assert_eq!(d.available(t0), ["http://b"]);
        assert!(d.failed_until.is_empty());
    }

    #[test]
    fn a_failure_seen_by_one_shard_is_seen_by_all() {
        let published = Arc::new(Published::default());
        published.publish(vec!["http://a".into(), "http://b".into()]);
        let mut one = Director::new(published.clone(), Duration::from_secs(5));
        let mut two = Director::new(published.clone(), Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(two.available(t0), ["http://a", "http://b"]);
        one.failed("http://a", t0);
        assert_eq!(two.available(t0), ["http://b"]);
        assert_eq!(
            two.available(t0 + Duration::from_secs(6)),
            ["http://a", "http://b"]
        );
        assert_eq!(
            one.available(t0 + Duration::from_secs(6)),
            ["http://a", "http://b"]
        );
    }
}
