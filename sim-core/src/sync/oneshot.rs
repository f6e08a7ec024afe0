//! A channel for exactly one value.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use crate::footprint::Resource;
use crate::race::SyncClock;
use crate::task::{set_wait, yield_now};

struct Inner<T> {
    value: RefCell<Option<T>>,
    sender_alive: Cell<bool>,
    receiver_alive: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    /// What steps that use the channel touch.
    resource: Resource,
    /// Released by the send, acquired by the receive (the race detector).
    clock: SyncClock,
}

/// A oneshot channel.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Rc::new(Inner {
        value: RefCell::new(None),
        sender_alive: Cell::new(true),
        receiver_alive: Cell::new(true),
        waker: RefCell::new(None),
        resource: Resource::new(),
        clock: SyncClock::new(),
    });
    (Sender { inner: inner.clone() }, Receiver { inner })
}

/// The receiver's error: the sender was dropped without sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvError;

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the oneshot sender was dropped without sending")
    }
}

impl std::error::Error for RecvError {}

/// The sending half.
pub struct Sender<T> {
    inner: Rc<Inner<T>>,
}

impl<T> Sender<T> {
    /// Sends the value; gives it back if the receiver is gone.
    pub fn send(self, value: T) -> Result<(), T> {
        self.inner.resource.write();
        if !self.inner.receiver_alive.get() {
            return Err(value);
        }
        *self.inner.value.borrow_mut() = Some(value);
        self.inner.clock.release();
        Ok(())
        // Drop wakes the receiver.
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.inner.resource.write();
        self.inner.sender_alive.set(false);
        let waker = self.inner.waker.borrow_mut().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The receiving half.
pub struct Receiver<T> {
    inner: Rc<Inner<T>>,
}

impl<T> Receiver<T> {
    /// Waits for the value. A scheduling point.
    pub async fn recv(self) -> Result<T, RecvError> {
        yield_now().await;
        poll_fn(|cx| {
            if let Some(value) = self.inner.value.borrow_mut().take() {
                self.inner.resource.write();
                self.inner.clock.acquire();
                return Poll::Ready(Ok(value));
            }
            if !self.inner.sender_alive.get() {
                self.inner.resource.write();
                return Poll::Ready(Err(RecvError));
            }
            // The sender's drop (after a send, or without one) wakes this task.
            self.inner.resource.check();
            *self.inner.waker.borrow_mut() = Some(cx.waker().clone());
            set_wait("receive from", "oneshot channel");
            Poll::Pending
        })
        .await
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.inner.resource.write();
        self.inner.receiver_alive.set(false);
    }
}
