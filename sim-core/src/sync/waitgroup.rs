//! `WaitGroup`: Go's `sync.WaitGroup`.

use std::borrow::Cow;
use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;

use super::{WaitList, describe};
use crate::footprint::Resource;
use crate::race::SyncClock;
use crate::task::{set_wait, yield_now};

struct Inner {
    name: Cow<'static, str>,
    count: Cell<i64>,
    waiters: WaitList,
    /// What steps that use the group touch.
    resource: Resource,
    /// Released by `Done` (a negative `Add`), acquired when `Wait` returns (the race detector).
    clock: SyncClock,
}

/// Waits for a collection of tasks to finish. Cloning gives another handle to the same group,
/// as passing `&wg` does in Go.
#[derive(Clone)]
pub struct WaitGroup {
    inner: Rc<Inner>,
}

impl WaitGroup {
    /// An unnamed group with a zero counter.
    pub fn new() -> Self {
        WaitGroup::named("")
    }

    /// A group with a name for reports.
    pub fn named(name: impl Into<Cow<'static, str>>) -> Self {
        WaitGroup {
            inner: Rc::new(Inner {
                name: name.into(),
                count: Cell::new(0),
                waiters: WaitList::new(),
                resource: Resource::new(),
                clock: SyncClock::new(),
            }),
        }
    }

    /// Adds `delta` (may be negative) to the counter; at zero, every waiter is released.
    ///
    /// # Panics
    /// With Go's message `sync: negative WaitGroup counter` if the counter goes below zero.
    pub fn add(&self, delta: i64) {
        self.inner.resource.write();
        let count = self.inner.count.get() + delta;
        assert!(count >= 0, "sync: negative WaitGroup counter");
        if delta < 0 {
            self.inner.clock.release();
        }
        self.inner.count.set(count);
        if count == 0 {
            self.inner.waiters.wake_all();
        }
    }

    /// `add(-1)`.
    pub fn done(&self) {
        self.add(-1);
    }

    /// The counter.
    pub fn count(&self) -> i64 {
        self.inner.resource.read();
        self.inner.count.get()
    }

    /// Waits until the counter is zero. A scheduling point.
    pub async fn wait(&self) {
        yield_now().await;
        poll_fn(|cx| {
            if self.inner.count.get() == 0 {
                self.inner.resource.write();
                self.inner.clock.acquire();
                return Poll::Ready(());
            }
            // The `add` that brings the counter to zero wakes this task.
            self.inner.resource.check();
            self.inner.waiters.register(cx.waker());
            // No counter in the text: `done()` wakes nobody until zero, so it would go stale.
            set_wait("wait for", describe("WaitGroup", &self.inner.name));
            Poll::Pending
        })
        .await;
    }
}

impl Default for WaitGroup {
    fn default() -> Self {
        WaitGroup::new()
    }
}
