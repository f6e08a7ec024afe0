//! Multi-producer, multi-consumer channels, bounded or unbounded, as Go's channels are used.
//!
//! Both ends clone. The channel closes when [`Sender::close`] is called or every sender is
//! dropped; receivers then drain what is buffered and get `None`. Sending to a closed channel,
//! or one without receivers, returns the value in a [`SendError`] (Go panics there; Rust code
//! expects an error).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;

use super::{WaitList, describe};
use crate::footprint::Resource;
use crate::race::SyncClock;
use crate::task::{set_wait, yield_now};

struct Chan<T> {
    name: Cow<'static, str>,
    capacity: Option<usize>,
    queue: RefCell<VecDeque<T>>,
    closed: Cell<bool>,
    senders: Cell<usize>,
    receivers: Cell<usize>,
    receive_waiters: WaitList,
    send_waiters: WaitList,
    /// What steps that use the channel touch (every operation writes it, but a receive or send
    /// that finds it empty or full and waits only checks it).
    resource: Resource,
    /// The race detector's clock: one per channel, not per buffer slot ([`crate::race`]).
    clock: SyncClock,
}

impl<T> Chan<T> {
    /// Records the running step's use of the channel.
    fn touch(&self) {
        self.resource.write();
    }

    fn is_closed(&self) -> bool {
        self.closed.get() || self.senders.get() == 0
    }

    /// Whether a send can go through at all (open, with a receiver), full or not.
    fn accepts_sends(&self) -> bool {
        !self.closed.get() && self.receivers.get() > 0
    }

    /// Whether the buffer is at capacity.
    fn is_full(&self) -> bool {
        self.capacity.is_some_and(|capacity| self.queue.borrow().len() >= capacity)
    }

    fn close(&self) {
        self.touch();
        self.clock.release();
        self.closed.set(true);
        self.receive_waiters.wake_all();
        self.send_waiters.wake_all();
    }

    fn label(&self) -> String {
        describe("channel", &self.name)
    }
}

/// A channel holding at most `capacity` values: senders wait while it is full.
///
/// # Panics
/// If `capacity` is zero (rendezvous channels are not modelled).
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "kdst: a bounded channel needs a capacity of at least 1");
    new_channel("", Some(capacity))
}

/// A channel that never makes senders wait.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    new_channel("", None)
}

/// A bounded (`Some(capacity)`) or unbounded (`None`) channel with a name for reports.
pub fn named<T>(
    name: impl Into<Cow<'static, str>>,
    capacity: Option<usize>,
) -> (Sender<T>, Receiver<T>) {
    assert!(capacity != Some(0), "kdst: a bounded channel needs a capacity of at least 1");
    new_channel(name, capacity)
}

fn new_channel<T>(
    name: impl Into<Cow<'static, str>>,
    capacity: Option<usize>,
) -> (Sender<T>, Receiver<T>) {
    let chan = Rc::new(Chan {
        name: name.into(),
        capacity,
        queue: RefCell::new(VecDeque::new()),
        closed: Cell::new(false),
        senders: Cell::new(1),
        receivers: Cell::new(1),
        receive_waiters: WaitList::new(),
        send_waiters: WaitList::new(),
        resource: Resource::new(),
        clock: SyncClock::new(),
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// The error of a send to a closed channel or one without receivers; carries the value back.
#[derive(PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("send on a closed channel")
    }
}

impl<T> std::error::Error for SendError<T> {}

/// Why [`Sender::try_send`] failed.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The channel is at capacity.
    Full(T),
    /// The channel is closed or has no receivers.
    Closed(T),
}

/// The sending end.
pub struct Sender<T> {
    chan: Rc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends, waiting while the channel is full. A scheduling point.
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        yield_now().await;
        let mut value = Some(value);
        poll_fn(|cx| {
            let chan = &self.chan;
            if chan.is_full() && chan.accepts_sends() {
                // Full: a receive, a close or the last receiver's drop wakes this sender.
                chan.resource.check();
                chan.send_waiters.register(cx.waker());
                set_wait("send on", chan.label() + " (full)");
                return Poll::Pending;
            }
            match self.try_send(value.take().expect("polled after completion")) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(TrySendError::Closed(back)) => Poll::Ready(Err(SendError(back))),
                Err(TrySendError::Full(_)) => unreachable!("kdst internal: room was checked"),
            }
        })
        .await
    }

    /// Sends if there is room, without waiting or yielding.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let chan = &self.chan;
        chan.touch();
        if !chan.accepts_sends() {
            return Err(TrySendError::Closed(value));
        }
        if chan.is_full() {
            return Err(TrySendError::Full(value));
        }
        chan.queue.borrow_mut().push_back(value);
        chan.clock.acquire_release();
        chan.receive_waiters.wake_all();
        Ok(())
    }

    /// Closes the channel for every sender (Go's `close(ch)`).
    pub fn close(&self) {
        self.chan.close();
    }

    /// The number of buffered values.
    pub fn len(&self) -> usize {
        self.chan.touch();
        self.chan.queue.borrow().len()
    }

    /// Whether no value is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.touch();
        self.chan.senders.set(self.chan.senders.get() + 1);
        Sender { chan: self.chan.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.chan.touch();
        self.chan.senders.set(self.chan.senders.get() - 1);
        if self.chan.senders.get() == 0 {
            self.chan.clock.release();
            self.chan.receive_waiters.wake_all();
        }
    }
}

/// The receiving end.
pub struct Receiver<T> {
    chan: Rc<Chan<T>>,
}

impl<T> Receiver<T> {
    /// Receives the next value, waiting while the channel is empty; `None` once it is closed
    /// and drained. A scheduling point.
    pub async fn recv(&self) -> Option<T> {
        yield_now().await;
        poll_fn(|cx| {
            let chan = &self.chan;
            if chan.queue.borrow().is_empty() && !chan.is_closed() {
                // Empty: a send, a close or the last sender's drop wakes this receiver.
                chan.resource.check();
                chan.receive_waiters.register(cx.waker());
                set_wait("receive from", chan.label());
                return Poll::Pending;
            }
            Poll::Ready(self.try_recv())
        })
        .await
    }

    /// Takes a buffered value, without waiting or yielding.
    pub fn try_recv(&self) -> Option<T> {
        self.chan.touch();
        let value = self.chan.queue.borrow_mut().pop_front();
        self.chan.clock.acquire_release();
        if value.is_some() {
            self.chan.send_waiters.wake_all();
        }
        value
    }

    /// Closes the channel.
    pub fn close(&self) {
        self.chan.close();
    }

    /// The number of buffered values.
    pub fn len(&self) -> usize {
        self.chan.touch();
        self.chan.queue.borrow().len()
    }

    /// Whether no value is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.touch();
        self.chan.receivers.set(self.chan.receivers.get() + 1);
        Receiver { chan: self.chan.clone() }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.chan.touch();
        self.chan.receivers.set(self.chan.receivers.get() - 1);
        if self.chan.receivers.get() == 0 {
            self.chan.send_waiters.wake_all();
        }
    }
}
