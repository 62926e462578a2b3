//! The simulation's clock and its agenda: simulated time only moves when the world takes the
//! next event, and everything that waits for time (ticks, deliveries, clients' timeouts) is an
//! event in one ordered agenda.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::raft::env::Clock;

/// Wall-clock time at the simulation's start (2026-01-01T00:00:00Z), so the leader's clock
/// reads the same on every run.
const EPOCH_NANOS: i64 = 1_767_225_600_000_000_000;

/// Simulated time since the start of a run.
pub struct SimTime {
    base: Instant,
    now: Cell<Duration>,
}

impl SimTime {
    pub fn new() -> Rc<SimTime> {
        Rc::new(SimTime {
            base: Instant::now(),
            now: Cell::new(Duration::ZERO),
        })
    }

    pub fn now(&self) -> Duration {
        self.now.get()
    }

    /// Moves time forward (never back).
    pub fn advance_to(&self, t: Duration) {
        if t > self.now.get() {
            self.now.set(t);
        }
    }
}

/// The raft node's clock in the simulation.
pub struct SimClock(pub Rc<SimTime>);

impl Clock for SimClock {
    fn now(&self) -> Instant {
        self.0.base + self.0.now()
    }

    fn unix_nanos(&self) -> i64 {
        EPOCH_NANOS + self.0.now().as_nanos() as i64
    }
}

/// Events in time order; equal times keep the order they were scheduled in.
pub struct Agenda<E> {
    events: BTreeMap<(Duration, u64), E>,
    seq: u64,
}

impl<E> Default for Agenda<E> {
    fn default() -> Self {
        Agenda {
            events: BTreeMap::new(),
            seq: 0,
        }
    }
}

impl<E> Agenda<E> {
    pub fn at(&mut self, t: Duration, event: E) {
        self.seq += 1;
        self.events.insert((t, self.seq), event);
    }

    /// When the next event is due.
    pub fn next_time(&self) -> Option<Duration> {
        self.events.keys().next().map(|(t, _)| *t)
    }

    pub fn pop(&mut self) -> Option<(Duration, E)> {
        self.events.pop_first().map(|((t, _), e)| (t, e))
    }
}

/// Wakes a task at a simulated instant.
pub struct Alarm {
    pub time: Rc<SimTime>,
    pub wakers: Rc<RefCell<Agenda<Waker>>>,
}

impl Alarm {
    /// Resolves once simulated time has reached `now + d`.
    pub fn sleep(&self, d: Duration) -> Sleep {
        Sleep {
            time: self.time.clone(),
            wakers: self.wakers.clone(),
            until: self.time.now() + d,
            armed: false,
        }
    }
}

pub struct Sleep {
    time: Rc<SimTime>,
    wakers: Rc<RefCell<Agenda<Waker>>>,
    until: Duration,
    armed: bool,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.time.now() >= self.until {
            return Poll::Ready(());
        }
        if !self.armed {
            self.armed = true;
            let until = self.until;
            self.wakers.borrow_mut().at(until, cx.waker().clone());
        }
        Poll::Pending
    }
}

/// `fut`'s output, or `None` once `d` of simulated time has passed.
pub async fn within<T>(alarm: &Alarm, d: Duration, fut: impl Future<Output = T>) -> Option<T> {
    let sleep = alarm.sleep(d);
    futures_lite::future::or(async { Some(fut.await) }, async {
        sleep.await;
        None
    })
    .await
}
