//! The behaviours tern relies on from its patched glommio (`vendor/glommio/PATCHES.md`),
//! checked from outside the runtime: time-slice preemption without a kernel timer, a sleeping
//! executor waking for the earliest timer even when a later one was armed first, no lost
//! wake-up between executors that sleep and wake each other many times, and a stream's single
//! multishot read poll (nothing allocated per request, every byte and the end of the stream
//! delivered, a dropped stream's connection closed), and I/O latencies timed only for an
//! executor that records them.
//!
//! Each test that waits for a wake-up guards against a hang with a generous limit (a broken
//! patch hangs rather than fails); no test asserts how fast anything ran.

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

/// A std client on its own thread for the stream tests: connects to `port`, runs `body`.
fn client_thread<T: Send + 'static>(
    port: u16,
    body: impl FnOnce(std::net::TcpStream) -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects");
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        body(stream)
    })
}

/// Runs `body` with a listener on a free loopback port on a fresh executor and `client` (a
/// thread it starts with the port) beside it; returns what the client returns.
fn serve<T, F, Fut>(
    what: &str,
    client: impl FnOnce(u16) -> std::thread::JoinHandle<T> + Send + 'static,
    body: F,
) -> T
where
    T: Send + 'static,
    F: FnOnce(glommio::net::TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let client = run_with_limit(what, Duration::from_secs(60), move || async move {
        let listener = glommio::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let client = client(listener.local_addr().unwrap().port());
        body(listener).await;
        client
    });
    client.join().expect("the client ends")
}

#[test]
fn a_keep_alive_connection_waits_for_each_request_without_a_new_poll() {
    // Ping-pong over one connection: the server waits for every request (the client sends the
    // next only after the answer), so each one arrives while the server waits on its socket's
    // readiness. glommio armed a new one-shot poll (a new source, one allocation) after every
    // short read; the patched stream keeps one multishot poll armed and allocates nothing per
    // request. Also shows that no completion of that poll is lost (the test would hang).
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    const ROUNDS: u32 = 5_000;
    let (per_request_tx, per_request) = mpsc::channel();
    let answered = serve(
        "ping-pong",
        |port| {
            client_thread(port, |mut s| {
                use std::io::{Read, Write};
                let mut answer = [0u8; 8];
                for i in 0..ROUNDS {
                    s.write_all(&i.to_le_bytes()).unwrap();
                    s.read_exact(&mut answer[..4]).unwrap();
                    assert_eq!(u32::from_le_bytes(answer[..4].try_into().unwrap()), i + 1);
                }
                ROUNDS
            })
        },
        move |listener| async move {
            let mut s = listener.accept().await.expect("accepts");
            let mut buf = [0u8; 64];
            let mut before = 0;
            for i in 0..ROUNDS {
                if i == 100 {
                    before = allocations_here();
                }
                let mut got = 0;
                while got < 4 {
                    let n = s.read(&mut buf[got..]).await.unwrap();
                    assert!(n > 0, "the client closed early");
                    got += n;
                }
                let n = u32::from_le_bytes(buf[..4].try_into().unwrap());
                s.write_all(&(n + 1).to_le_bytes()).await.unwrap();
            }
            let after = allocations_here();
            per_request_tx
                .send((after - before) as f64 / f64::from(ROUNDS - 100))
                .unwrap();
        },
    );
    assert_eq!(answered, ROUNDS);
    let per_request = per_request.recv().unwrap();
    assert!(
        per_request < 0.5,
        "{per_request:.2} allocations per request on a keep-alive connection"
    );
}

#[test]
fn reads_that_fill_the_buffer_and_reads_after_a_quiet_spell_get_every_byte() {
    // 4 MiB in one burst read 4 KiB at a time (full reads go straight back to the socket), then
    // a pause long enough for the server to wait on its poll, then a last piece and the end of
    // the stream.
    use futures_lite::AsyncReadExt;
    const BURST: usize = 4 << 20;
    let (total_tx, total) = mpsc::channel();
    serve(
        "burst then quiet",
        |port| {
            client_thread(port, |mut s| {
                use std::io::Write;
                let burst: Vec<u8> = (0..BURST).map(|i| (i % 251) as u8).collect();
                s.write_all(&burst).unwrap();
                std::thread::sleep(Duration::from_millis(200));
                s.write_all(b"last").unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
            })
        },
        move |listener| async move {
            let mut s = listener.accept().await.expect("accepts");
            let mut buf = vec![0u8; 4096];
            let mut total = 0usize;
            let mut tail = Vec::new();
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                for (k, b) in buf[..n].iter().enumerate() {
                    let at = total + k;
                    if at < BURST {
                        assert_eq!(*b, (at % 251) as u8, "byte {at}");
                    } else {
                        tail.push(*b);
                    }
                }
                total += n;
            }
            assert_eq!(tail, b"last");
            total_tx.send(total).unwrap();
        },
    );
    assert_eq!(total.recv().unwrap(), BURST + 4);
}

#[test]
fn a_dropped_stream_closes_its_connection_while_its_executor_idles() {
    // The stream's armed poll holds the socket in the kernel until it is cancelled: dropping the
    // stream must still close the connection (the client sees the end of the stream) even when
    // the executor has nothing else to do.
    use futures_lite::AsyncReadExt;
    let eof = serve(
        "drop",
        |port| {
            client_thread(port, |mut s| {
                use std::io::{Read, Write};
                s.write_all(b"hello").unwrap();
                let mut buf = [0u8; 16];
                s.read(&mut buf)
                    .expect("the connection closes before the read timeout")
            })
        },
        move |listener| async move {
            let mut s = listener.accept().await.expect("accepts");
            let mut buf = [0u8; 16];
            let n = s.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"hello");
            drop(s);
            // Idle, with the listener still open, well past the client's wait for the close.
            sleep(Duration::from_secs(2)).await;
            drop(listener);
        },
    );
    assert_eq!(eof, 0, "the client reads the end of the stream");
}

/// Reads a file through glommio's DMA API on an executor built with or without
/// `record_io_latencies`; returns how many I/O latencies its reactor recorded.
fn io_latencies_recorded(record: bool) -> u64 {
    let dir = std::env::temp_dir().join(format!(
        "tern-runtime-latency-{}-{record}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("f");
    std::fs::write(&path, vec![7u8; 8192]).unwrap();
    let count = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(1 << 20)
        .record_io_latencies(record)
        .spawn(move || async move {
            let file = glommio::io::DmaFile::open(&path).await.unwrap();
            for i in 0..4 {
                let got = file.read_at_aligned(i * 4096 % 8192, 4096).await.unwrap();
                assert_eq!(got.len(), 4096);
                assert!(got.iter().all(|&b| b == 7));
            }
            file.close().await.unwrap();
            executor().io_stats().all_rings().io_latency_us().count() as u64
        })
        .unwrap()
        .join()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    count
}

/// Patch 9: the queued, submitted and fulfilled instants of an I/O are read from the clock
/// only for an executor that records I/O latencies; one that does records them as before.
#[test]
fn io_latencies_are_recorded_only_when_asked_for() {
    assert!(io_latencies_recorded(true) > 0);
    assert_eq!(io_latencies_recorded(false), 0);
}
