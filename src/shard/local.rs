//! Single-thread synchronisation primitives for one shard: a batch mailbox and a one-shot slot.
//!
//! Both are `!Send` on purpose: they live inside one executor and cost no atomics. They know
//! nothing about what they carry.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A single-consumer queue whose consumer takes everything that arrived since its last turn.
///
/// Producers never wait: `push` appends and wakes the consumer. This is what lets the raft loop
/// batch every proposal that came in while it was busy (group commit falls out of it).
pub struct Mailbox<T> {
    items: RefCell<VecDeque<T>>,
    waker: Cell<Option<Waker>>,
    closed: Cell<bool>,
}

impl<T> Default for Mailbox<T> {
    fn default() -> Self {
        Mailbox {
            items: RefCell::new(VecDeque::new()),
            waker: Cell::new(None),
            closed: Cell::new(false),
        }
    }
}

impl<T> Mailbox<T> {
    pub fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    pub fn push(&self, item: T) {
        self.items.borrow_mut().push_back(item);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    pub fn len(&self) -> usize {
        self.items.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.borrow().is_empty()
    }

    /// Wakes the consumer with an empty batch forever after; used at shutdown.
    pub fn close(&self) {
        self.closed.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Waits until at least one item is queued (or the mailbox is closed) and moves every
    /// queued item into `out`. Returns false once closed and drained.
    pub fn recv_batch<'a>(&'a self, out: &'a mut Vec<T>) -> RecvBatch<'a, T> {
        RecvBatch { mailbox: self, out }
    }
}

pub struct RecvBatch<'a, T> {
    mailbox: &'a Mailbox<T>,
    out: &'a mut Vec<T>,
}

impl<T> Future for RecvBatch<'_, T> {
    type Output = bool;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let this = self.get_mut();
        let mut items = this.mailbox.items.borrow_mut();
        if !items.is_empty() {
            this.out.extend(items.drain(..));
            return Poll::Ready(true);
        }
        if this.mailbox.closed.get() {
            return Poll::Ready(false);
        }
        this.mailbox.waker.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

/// A value that one side sets once and the other side awaits. Dropping the sender without
/// setting resolves the receiver with `None`.
pub fn oneshot<T>() -> (OneshotSender<T>, OneshotReceiver<T>) {
    let slot = Rc::new(OneshotSlot {
        value: RefCell::new(None),
        waker: Cell::new(None),
        sender_gone: Cell::new(false),
    });
    (
        OneshotSender { slot: slot.clone() },
        OneshotReceiver { slot },
    )
}

struct OneshotSlot<T> {
    value: RefCell<Option<T>>,
    waker: Cell<Option<Waker>>,
    sender_gone: Cell<bool>,
}

pub struct OneshotSender<T> {
    slot: Rc<OneshotSlot<T>>,
}

impl<T> OneshotSender<T> {
    pub fn send(self, value: T) {
        *self.slot.value.borrow_mut() = Some(value);
        // Drop runs next and wakes the receiver.
    }
}

impl<T> Drop for OneshotSender<T> {
    fn drop(&mut self) {
        self.slot.sender_gone.set(true);
        if let Some(w) = self.slot.waker.take() {
            w.wake();
        }
    }
}

pub struct OneshotReceiver<T> {
    slot: Rc<OneshotSlot<T>>,
}

impl<T> Future for OneshotReceiver<T> {
    type Output = Option<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(v) = self.slot.value.borrow_mut().take() {
            return Poll::Ready(Some(v));
        }
        if self.slot.sender_gone.get() {
            return Poll::Ready(None);
        }
        self.slot.waker.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    #[test]
    fn mailbox_hands_over_everything_queued_in_one_batch() {
        let mb = Mailbox::new();
        mb.push(1);
        mb.push(2);
        mb.push(3);
        let mut out = Vec::new();
        assert!(block_on(mb.recv_batch(&mut out)));
        assert_eq!(out, vec![1, 2, 3]);
        assert!(mb.is_empty());
        mb.close();
        out.clear();
        assert!(!block_on(mb.recv_batch(&mut out)));
    }

    #[test]
    fn oneshot_delivers_value_or_none_when_sender_dropped() {
        let (tx, rx) = oneshot();
        tx.send(5);
        assert_eq!(block_on(rx), Some(5));
        let (tx, rx) = oneshot::<u8>();
        drop(tx);
        assert_eq!(block_on(rx), None);
    }
}
