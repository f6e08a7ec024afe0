//! `Notify`: wake one or all waiting tasks, with a stored permit (as `tokio::sync::Notify`).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};

use super::describe;
use crate::footprint::Resource;
use crate::race::SyncClock;
use crate::task::set_wait;

struct Waiter {
    notified: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

struct Inner {
    name: Cow<'static, str>,
    permit: Cell<bool>,
    /// How many times `notify_waiters` was called: a `Notified` created before a call completes,
    /// even if it had not been polled yet (tokio's guarantee).
    generation: Cell<u64>,
    waiters: RefCell<Vec<Rc<Waiter>>>,
    /// What steps that use the notifier touch.
    resource: Resource,
    /// Released by every notification, acquired by every wake (the race detector).
    clock: SyncClock,
}

/// Notifies tasks. Cloning gives another handle to the same notifier.
#[derive(Clone)]
pub struct Notify {
    inner: Rc<Inner>,
}

impl Notify {
    /// An unnamed notifier without a permit.
    pub fn new() -> Self {
        Notify::named("")
    }

    /// A notifier with a name for reports.
    pub fn named(name: impl Into<Cow<'static, str>>) -> Self {
        Notify {
            inner: Rc::new(Inner {
                name: name.into(),
                permit: Cell::new(false),
                generation: Cell::new(0),
                waiters: RefCell::new(Vec::new()),
                resource: Resource::new(),
                clock: SyncClock::new(),
            }),
        }
    }

    /// Wakes the longest-waiting task, or stores a permit for the next [`Notify::notified`] if
    /// none waits (at most one permit is stored).
    pub fn notify_one(&self) {
        self.inner.resource.write();
        self.inner.clock.release();
        let waiter = {
            let mut waiters = self.inner.waiters.borrow_mut();
            if waiters.is_empty() { None } else { Some(waiters.remove(0)) }
        };
        match waiter {
            Some(waiter) => {
                waiter.notified.set(true);
                let waker = waiter.waker.borrow_mut().take();
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            None => self.inner.permit.set(true),
        }
    }

    /// Wakes every task waiting now, and completes every [`Notified`] created before this call
    /// even if not yet polled; stores no permit.
    pub fn notify_waiters(&self) {
        self.inner.clock.release();
        self.inner.resource.write();
        self.inner.generation.set(self.inner.generation.get() + 1);
        let waiters = std::mem::take(&mut *self.inner.waiters.borrow_mut());
        for waiter in waiters {
            waiter.notified.set(true);
            let waker = waiter.waker.borrow_mut().take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    /// Waits for a notification (or consumes the stored permit). A scheduling point.
    pub fn notified(&self) -> Notified {
        self.inner.resource.read();
        let generation = self.inner.generation.get();
        Notified { notify: self.clone(), waiter: None, yielded: false, generation }
    }
}

impl Default for Notify {
    fn default() -> Self {
        Notify::new()
    }
}

/// The future of [`Notify::notified`]. Dropped after being notified but before completing, it
/// passes the notification on.
#[must_use = "futures do nothing unless awaited"]
pub struct Notified {
    notify: Notify,
    waiter: Option<Rc<Waiter>>,
    yielded: bool,
    generation: u64,
}

impl Future for Notified {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        if !self.yielded {
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let waiting = self.notify.inner.generation.get() == self.generation
            && self.waiter.as_ref().is_some_and(|waiter| !waiter.notified.get());
        if waiting {
            // Queued already and not notified: a notification wakes this task. (Joining the
            // queue is a write: `notify_one` takes the longest-waiting task.)
            self.notify.inner.resource.check();
        } else {
            self.notify.inner.resource.write();
        }
        if self.notify.inner.generation.get() != self.generation {
            if let Some(waiter) = self.waiter.take() {
                let mut waiters = self.notify.inner.waiters.borrow_mut();
                waiters.retain(|other| !Rc::ptr_eq(other, &waiter));
            }
            self.notify.inner.clock.acquire();
            return Poll::Ready(());
        }
        if let Some(waiter) = &self.waiter {
            if waiter.notified.get() {
                self.waiter = None;
                self.notify.inner.clock.acquire();
                return Poll::Ready(());
            }
            *waiter.waker.borrow_mut() = Some(cx.waker().clone());
        } else if self.notify.inner.permit.replace(false) {
            self.notify.inner.clock.acquire();
            return Poll::Ready(());
        } else {
            let waiter = Rc::new(Waiter {
                notified: Cell::new(false),
                waker: RefCell::new(Some(cx.waker().clone())),
            });
            self.notify.inner.waiters.borrow_mut().push(waiter.clone());
            self.waiter = Some(waiter);
        }
        set_wait("be notified by", describe("Notify", &self.notify.inner.name));
        Poll::Pending
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        let Some(waiter) = self.waiter.take() else { return };
        self.notify.inner.resource.write();
        if waiter.notified.get() {
            self.notify.notify_one();
        } else {
            self.notify.inner.waiters.borrow_mut().retain(|other| !Rc::ptr_eq(other, &waiter));
        }
    }
}
