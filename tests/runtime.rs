//! The behaviours tern relies on from its patched glommio (`vendor/glommio/PATCHES.md`),
//! checked from outside the runtime: time-slice preemption without a kernel timer, a sleeping
//! executor waking for the earliest timer even when a later one was armed first, and no lost
//! wake-up between executors that sleep and wake each other many times.
//!
//! Each test guards against a hang with a generous limit (a broken patch hangs rather than
//! fails); no test asserts how fast anything ran.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use glommio::channels::shared_channel;
use glommio::timer::sleep;
use glommio::{executor, Latency, LocalExecutorBuilder, Placement, Shares};

/// Counts heap allocations per thread (for the timer test; tests run in parallel threads, so
/// a process-wide count would mix them).
struct Counting;
thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn allocations_here() -> u64 {
    ALLOCATIONS.with(|n| n.get())
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `body` on a fresh executor thread and returns its result, failing the test if it has
/// not finished within `limit`.
fn run_with_limit<T, F, Fut>(what: &str, limit: Duration, body: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    let (done, result) = mpsc::channel();
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(1 << 20)
        .spawn(move || async move {
            let _ = done.send(body().await);
        })
        .expect("executor starts");
    let value = result
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what}: not finished within {limit:?} (a lost wake-up?)"));
    handle.join().expect("executor thread ends");
    value
}

#[test]
fn a_busy_task_queue_yields_to_a_latency_sensitive_one_by_its_time_slice() {
    // The busy task never awaits anything but `yield_if_needed`, which yields only when the
    // runtime says the slice is over; the latency-sensitive task's timer can only be handled
    // (and its flag set) if that happens. Without preemption the busy loop never ends.
    let preempted = run_with_limit("preemption", Duration::from_secs(60), || async {
        let urgent = executor().create_task_queue(
            Shares::default(),
            Latency::Matters(Duration::from_millis(2)),
            "urgent",
        );
        let bulk = executor().create_task_queue(Shares::default(), Latency::NotImportant, "bulk");
        let flag = Rc::new(Cell::new(false));
        let set = flag.clone();
        let timer = glommio::spawn_local_into(
            async move {
                sleep(Duration::from_millis(20)).await;
                set.set(true);
            },
            urgent,
        )
        .unwrap();
        let seen = flag.clone();
        let busy = glommio::spawn_local_into(
            async move {
                let mut yields = 0u64;
                while !seen.get() {
                    executor().yield_if_needed().await;
                    yields += 1;
                }
                yields
            },
            bulk,
        )
        .unwrap();
        timer.await;
        busy.await
    });
    assert!(preempted > 0);
}

#[test]
fn timers_that_fire_while_the_executor_prepares_to_sleep_still_wake_it() {
    // Sleeps of a few microseconds: the reactor's wake-up timer often fires between being armed
    // and the executor falling asleep. Its completion must stay where the sleeping executor's
    // ring link sees it; had the reactor consumed it first, the executor would sleep for good
    // (a first version of the timer patch did, seen as members that never finished starting).
    let rounds = run_with_limit("short sleeps", Duration::from_secs(60), || async {
        let mut rounds = 0u32;
        for i in 0..20_000u64 {
            sleep(Duration::from_nanos(500 + (i % 7) * 1_000)).await;
            rounds += 1;
        }
        rounds
    });
    assert_eq!(rounds, 20_000);
}

#[test]
fn a_reactor_turn_does_not_copy_the_pending_timers() {
    // 2,000 timers far in the future (as a member's idle-timeout timers of 2,000 connections),
    // then 2,000 short sleeps: each makes the reactor look for due timers several times. glommio
    // split its timer map at `now` on every turn, which allocates new nodes along the split and
    // re-balances both halves (16.5 allocations per sleep here); the patched reactor takes due
    // timers from the front (3.0). Counted on the executor's thread.
    const PENDING: usize = 2_000;
    const SLEEPS: u64 = 2_000;
    let per_sleep = run_with_limit("pending timers", Duration::from_secs(60), || async {
        let far: Vec<_> = (0..PENDING)
            .map(|i| glommio::spawn_local(sleep(Duration::from_secs(3_600 + i as u64))).detach())
            .collect();
        sleep(Duration::from_millis(1)).await; // let every far timer register
        let before = allocations_here();
        for _ in 0..SLEEPS {
            sleep(Duration::from_micros(1)).await;
        }
        let after = allocations_here();
        drop(far);
        (after - before) as f64 / SLEEPS as f64
    });
    assert!(
        per_sleep < 8.0,
        "{per_sleep:.1} allocations per sleep with {PENDING} timers pending"
    );
}

/// Starts an executor thread that connects the sending end of `channel`, then runs `body`
/// with it.
fn sender_thread<T, F, Fut>(
    channel: shared_channel::SharedSender<T>,
    body: F,
) -> glommio::ExecutorJoinHandle<()>
where
    T: Send + Sized + 'static,
    F: FnOnce(shared_channel::ConnectedSender<T>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(1 << 20)
        .spawn(move || async move { body(channel.connect().await).await })
        .expect("executor starts")
}

#[test]
fn a_sleeping_executor_wakes_for_an_earlier_timer_armed_after_a_later_one() {
    // The executor sleeps with only a 30 s timer pending; a message from another executor then
    // starts a 50 ms timer. Had the reactor kept its 30 s wake-up timer, the short timer would
    // end after the long one (and the limit would fail the test first).
    let (tx, rx) = shared_channel::new_bounded::<u32>(1);
    let other = sender_thread(tx, |tx| async move {
        sleep(Duration::from_millis(200)).await;
        tx.send(1).await.expect("the receiver waits");
    });
    let order = run_with_limit("timers", Duration::from_secs(20), move || async move {
        let log = Rc::new(std::cell::RefCell::new(Vec::new()));
        let long_log = log.clone();
        let long = glommio::spawn_local(async move {
            sleep(Duration::from_secs(30)).await;
            long_log.borrow_mut().push("long");
        });
        let rx = rx.connect().await;
        rx.recv().await.expect("the other executor sends");
        sleep(Duration::from_millis(50)).await;
        log.borrow_mut().push("short");
        drop(long); // cancels the long timer's task
        let order = log.borrow().clone();
        order
    });
    other.join().expect("the sender ends");
    assert_eq!(order, vec!["short"]);
}

#[test]
fn executors_that_sleep_and_wake_each_other_lose_no_wake_up() {
    // A ping-pong between two executors: each message finds the other side asleep or about to
    // sleep, which is where a missing barrier or a stale ring link loses a wake-up (the
    // exchange then hangs and the limit fails the test).
    const ROUNDS: u32 = 50_000;
    let (ping_tx, ping_rx) = shared_channel::new_bounded::<u32>(1);
    let (pong_tx, pong_rx) = shared_channel::new_bounded::<u32>(1);
    let echo = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(1 << 20)
        .spawn(move || async move {
            let rx = ping_rx.connect().await;
            let tx = pong_tx.connect().await;
            while let Some(n) = rx.recv().await {
                if tx.send(n).await.is_err() {
                    break;
                }
            }
        })
        .expect("executor starts");
    let last = run_with_limit("ping-pong", Duration::from_secs(120), move || async move {
        let tx = ping_tx.connect().await;
        let rx = pong_rx.connect().await;
        let mut last = 0;
        for n in 1..=ROUNDS {
            tx.send(n).await.expect("the echo side receives");
            last = rx.recv().await.expect("the echo side answers");
            assert_eq!(last, n);
        }
        last
    });
    echo.join().expect("the echo side ends");
    assert_eq!(last, ROUNDS);
}

#[test]
fn a_producer_waiting_for_room_is_woken_when_the_consumer_drains_the_channel() {
    // The consumer notifies the producer's executor only when a pop leaves at most one slot
    // free (the channel was full): a producer that keeps an 8-slot channel full must still be
    // woken every time it waits, with the consumer sleeping on its own timer now and then so
    // the producer also sleeps.
    const ITEMS: u64 = 200_000;
    let (tx, rx) = shared_channel::new_bounded::<u64>(8);
    let producer = sender_thread(tx, |tx| async move {
        for n in 0..ITEMS {
            tx.send(n).await.expect("the consumer receives");
        }
    });
    let sum = run_with_limit(
        "full channel",
        Duration::from_secs(120),
        move || async move {
            let rx = rx.connect().await;
            let mut sum = 0;
            let mut expected = 0;
            while let Some(n) = rx.recv().await {
                assert_eq!(n, expected);
                expected += 1;
                sum += n;
                if n % 10_000 == 0 {
                    sleep(Duration::from_millis(1)).await;
                }
            }
            sum
        },
    );
    producer.join().expect("the producer ends");
    assert_eq!(sum, ITEMS * (ITEMS - 1) / 2);
}
