//! The simulation's clients: each runs one operation at a time (a write, a compare-and-swap
//! or a quorum read of one of a few keys) through a member chosen at random, waits for it as
//! long as [`OP_TIMEOUT`] of simulated time, and records what it saw for the linearizability
//! check. An operation whose answer never came is recorded with an unknown outcome.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use rand::Rng;

use super::time::within;
use super::{Op, OpKind, World, CLIENTS_END, KEYS, OP_TIMEOUT};
use crate::error::Code;
use crate::store::Command;

/// The value of `key` in `view` (`None`: not found, or a directory).
pub(super) fn value_of(view: &crate::store::View, key: &str) -> Option<String> {
    view.get(key, false, false)
        .ok()
        .and_then(|e| e.node.value.clone())
}

/// One client: operations one at a time on random keys through random members.
pub(super) async fn client(world: Rc<RefCell<World>>, id: usize) {
    let alarm = world.borrow().alarm.clone();
    let mut serial = 0u64;
    loop {
        let think = Duration::from_millis(world.borrow_mut().rng.gen_range(0..60));
        alarm.sleep(think).await;
        let now = alarm.time.now();
        if now >= CLIENTS_END {
            return;
        }
        let picked = {
            let mut w = world.borrow_mut();
            w.any_up().map(|shard| {
                let key = KEYS[w.rng.gen_range(0..KEYS.len())].to_string();
                let choice = w.rng.gen_range(0..10);
                let expected = format!("c{}-{}", w.rng.gen_range(0..4), w.rng.gen_range(0..8));
                (shard, key, choice, expected)
            })
        };
        let Some((shard, key, choice, expected)) = picked else {
            alarm.sleep(Duration::from_millis(100)).await;
            continue;
        };
        serial += 1;
        let call = now.as_nanos() as u64;
        let value = format!("c{id}-{serial}");
        let (ret, kind) = match choice {
            0..=3 => {
                let cmd = Command::Set {
                    key: key.clone(),
                    value: value.clone(),
                    dir: false,
                    expire_at: None,
                    refresh: false,
                };
                let (wid, rx) = shard.submit_write(&cmd);
                let answer = within(&alarm, OP_TIMEOUT, rx).await;
                let ok = matches!(&answer, Some(Some(Ok(o))) if o.result.is_ok());
                if answer.is_none() {
                    shard.forget_write(wid);
                }
                (ok.then_some(()), OpKind::Write { value })
            }
            4..=6 => {
                // Compare with a value some client may have written (c<client>-<serial>).
                let cmd = Command::CompareAndSwap {
                    key: key.clone(),
                    value: value.clone(),
                    prev_value: Some(expected.clone()),
                    prev_index: None,
                    expire_at: None,
                    refresh: false,
                };
                let (wid, rx) = shard.submit_write(&cmd);
                let answer = within(&alarm, OP_TIMEOUT, rx).await;
                if answer.is_none() {
                    shard.forget_write(wid);
                }
                let result = match answer.flatten().map(|r| r.and_then(|o| o.result)) {
                    Some(Ok(_)) => Some(true),
                    Some(Err(e)) if matches!(e.code, Code::TestFailed | Code::KeyNotFound) => {
                        Some(false)
                    }
                    _ => None,
                };
                (
                    result.map(|_| ()),
                    OpKind::Cas {
                        expected,
                        new: value,
                        ok: result.unwrap_or(false),
                    },
                )
            }
            _ => {
                let (rid, rx) = shard.submit_read_index();
                let answer = within(&alarm, OP_TIMEOUT, rx).await;
                let index = match answer {
                    Some(Some(Ok(index))) => index,
                    None => {
                        shard.forget_read_index(rid);
                        continue;
                    }
                    _ => continue,
                };
                // A read is kept only if the member got as far as the read index.
                if within(&alarm, OP_TIMEOUT, shard.wait_applied(index))
                    .await
                    .is_none()
                    || shard.applied().0 < index
                {
                    continue;
                }
                let result = value_of(&shard.view(), &key);
                (Some(()), OpKind::Read { result })
            }
        };
        let ret = ret.map(|()| alarm.time.now().as_nanos() as u64);
        let op = Op {
            client: id,
            key,
            call,
            ret,
            kind,
        };
        let mut w = world.borrow_mut();
        let digest = op.ret.unwrap_or(1) ^ op.call.rotate_left(17) ^ id as u64;
        w.note(digest);
        w.history.borrow_mut().push(op);
    }
}
