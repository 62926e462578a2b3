//! Replica determinism: random command streams applied to a replica built from scratch and to
//! one restored from a snapshot midway end identical, with identical results and firings.

use super::*;
use crate::store::Command;

/// xorshift64*: small, fast and deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Generates commands over a small key space (so operations collide often) with a clock that
/// moves forward, and occasional Syncs.
struct Generator {
    rng: Rng,
    now: i64,
}

impl Generator {
    fn key(&mut self) -> String {
        let depth = 1 + self.rng.below(3);
        (0..depth)
            .map(|_| format!("/{}", self.rng.pick(&["a", "b", "_h"])))
            .collect()
    }

    fn value(&mut self) -> String {
        self.rng.pick(&["", "x", "y"]).to_string()
    }

    fn expire_at(&mut self) -> Option<i64> {
        self.rng
            .chance(30)
            .then(|| self.now + self.rng.below(5_000) as i64 * 1_000_000)
    }

    fn prev_value(&mut self) -> Option<String> {
        self.rng.chance(60).then(|| self.value())
    }

    fn prev_index(&mut self, store_index: u64) -> Option<u64> {
        self.rng
            .chance(50)
            .then(|| store_index.saturating_sub(self.rng.below(8)))
    }

    fn command(&mut self, store_index: u64) -> Command {
        self.now += self.rng.below(200) as i64 * 1_000_000;
        match self.rng.below(100) {
            0..=24 => Command::Set {
                key: self.key(),
                value: self.value(),
                dir: self.rng.chance(10),
                expire_at: self.expire_at(),
                refresh: self.rng.chance(10),
            },
            25..=39 => Command::Create {
                key: self.key(),
                value: self.value(),
                dir: self.rng.chance(15),
                expire_at: self.expire_at(),
                unique: self.rng.chance(20),
            },
            40..=51 => Command::Update {
                key: self.key(),
                value: self.rng.chance(80).then(|| self.value()),
                dir: self.rng.chance(10),
                expire_at: self.expire_at(),
                refresh: self.rng.chance(15),
            },
            52..=63 => Command::CompareAndSwap {
                key: self.key(),
                value: self.value(),
                prev_value: self.prev_value(),
                prev_index: self.prev_index(store_index),
                expire_at: self.expire_at(),
                refresh: self.rng.chance(10),
            },
            64..=77 => Command::Delete {
                key: self.key(),
                dir: self.rng.chance(50),
                recursive: self.rng.chance(30),
            },
            78..=87 => Command::CompareAndDelete {
                key: self.key(),
                prev_value: self.prev_value(),
                prev_index: self.prev_index(store_index),
            },
            _ => Command::Sync { now: self.now },
        }
    }
}

/// The same watchers on a replica: a root stream, a directory stream and an exact one-shot.
fn watch_some(store: &mut Replica) {
    for (key, recursive, stream) in [
        ("/", true, true),
        ("/a", true, true),
        ("/a/b", false, false),
        ("/_h", true, true),
    ] {
        assert!(matches!(
            store.watch(key, recursive, stream, None),
            Ok(WatchStart::Waiting(_))
        ));
    }
}

/// What an apply showed the outside world, watcher ids left out (they are per replica).
fn observed(applied: &Applied) -> (Option<Result<Event, Error>>, Vec<Event>) {
    let result = applied
        .result
        .as_ref()
        .map(|r| r.as_ref().map(|e| (**e).clone()).map_err(Clone::clone));
    (
        result,
        applied.fired.iter().map(|(_, e)| (**e).clone()).collect(),
    )
}

/// The TTL index holds exactly the tree's expirations, and the index counts events.
fn check_invariants(store: &Replica, successes: u64) {
    let rebuilt = Replica::restore(&store.snapshot(), 1).expect("own snapshot restores");
    assert_eq!(rebuilt.ttl, store.ttl, "TTL index follows the tree");
    let events = successes + store.stats().expire_count;
    assert_eq!(
        store.index(),
        events,
        "every success and expiry takes exactly one index"
    );
}

#[test]
fn replicas_agree_with_a_restore_midway() {
    const COMMANDS: usize = 10_000;
    const SPLIT: usize = 5_000;
    let mut generator = Generator {
        rng: Rng(0x5eed_1234_abcd_0001),
        now: T0,
    };
    let mut from_scratch = Replica::new(64);
    let mut restored: Option<Replica> = None;
    let (mut successes, mut failures, mut fired) = (0u64, 0u64, 0usize);

    for step in 0..COMMANDS {
        if step == SPLIT {
            let mut replica =
                Replica::restore(&from_scratch.snapshot(), 64).expect("snapshot restores");
            watch_some(&mut replica);
            watch_some(&mut from_scratch);
            restored = Some(replica);
        }
        let command = generator.command(from_scratch.index());
        let bytes = command.to_bytes();
        assert_eq!(
            Command::decode(&bytes).as_ref(),
            Ok(&command),
            "commands travel encoded"
        );
        let applied = from_scratch.apply(&command);
        match &applied.result {
            Some(Ok(_)) => successes += 1,
            Some(Err(error)) => {
                failures += 1;
                assert_eq!(error.index, from_scratch.index());
            }
            None => {}
        }
        fired += applied.fired.len();
        if let Some(replica) = restored.as_mut() {
            assert_eq!(
                observed(&replica.apply(&command)),
                observed(&applied),
                "step {step}: {command:?}"
            );
        }
        if step % 1000 == 999 {
            check_invariants(&from_scratch, successes);
            if let Some(replica) = restored.as_ref() {
                assert_eq!(replica.snapshot(), from_scratch.snapshot(), "step {step}");
            }
        }
    }

    let replica = restored.as_mut().expect("split happened");
    assert_eq!(replica.snapshot(), from_scratch.snapshot());
    assert_eq!(replica.watcher_count(), from_scratch.watcher_count());
    for key in ["/", "/a", "/b", "/_h", "/a/b"] {
        assert_eq!(
            replica.get(key, true, true),
            from_scratch.get(key, true, true),
            "{key}"
        );
    }
    // The stream exercised every path: successes, failures, expiries and firings.
    assert!(
        successes > 2_000 && failures > 2_000,
        "{successes} successes, {failures} failures"
    );
    let expiries = from_scratch.stats().expire_count;
    assert!(expiries > 100, "{expiries} expiries");
    assert!(fired > 1_000, "{fired} firings");
}
