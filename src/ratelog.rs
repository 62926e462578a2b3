//! Rate-limited error logs: an error that repeats (accept failures when file descriptors run
//! out, snapshot failures on a full disk, a peer sending to the wrong cluster) is printed once
//! per interval with a count of the repeats suppressed since the last line, instead of once per
//! occurrence.
//!
//! Owns only the counting; lines go to the server's log (`crate::logging`). Knows nothing
//! about what is logged. One
//! [`RateLimited`] per call site, usually a `static`; it is safe to share between shards.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a repeated error is printed by default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// One call site's log limiter.
pub struct RateLimited {
    interval: Duration,
    state: Mutex<State>,
}

struct State {
    last_printed: Option<Instant>,
    suppressed: u64,
}

impl RateLimited {
    pub const fn new(interval: Duration) -> RateLimited {
        RateLimited {
            interval,
            state: Mutex::new(State {
                last_printed: None,
                suppressed: 0,
            }),
        }
    }

    /// `Some(repeats suppressed since the last line)` when a line from this site may be logged
    /// now, `None` when it is only counted ([`ratelog!`](crate::ratelog) uses this).
    pub fn admit_now(&self) -> Option<u64> {
        self.admit(Instant::now())
    }

    /// `Some(suppressed so far)` when a line may be printed at `now`, `None` to suppress it.
    fn admit(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match s.last_printed {
            Some(at) if now.saturating_duration_since(at) < self.interval => {
                s.suppressed += 1;
                None
            }
            _ => {
                s.last_printed = Some(now);
                Some(std::mem::take(&mut s.suppressed))
            }
        }
    }
}

/// `ratelog!(SITE, "format", args…)`: a warning in the server's log (under the calling
/// module's package), unless the `RateLimited` static `SITE` printed one less than an interval
/// ago. Evaluates to whether it logged.
#[macro_export]
macro_rules! ratelog {
    ($site:expr, $($arg:tt)*) => {
        match $site.admit_now() {
            Some(0) => {
                ::tracing::warn!("{}", format_args!($($arg)*));
                true
            }
            Some(n) => {
                ::tracing::warn!("{} ({n} similar messages suppressed)", format_args!($($arg)*));
                true
            }
            None => false,
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_an_interval_are_counted_not_printed() {
        let site = RateLimited::new(Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(site.admit(t0), Some(0));
        for i in 1..1000 {
            assert_eq!(site.admit(t0 + Duration::from_millis(i)), None);
        }
        // The next interval prints once, with the count of what was swallowed.
        assert_eq!(site.admit(t0 + Duration::from_secs(5)), Some(999));
        assert_eq!(site.admit(t0 + Duration::from_secs(6)), None);
        assert_eq!(site.admit(t0 + Duration::from_secs(11)), Some(1));
    }
}
