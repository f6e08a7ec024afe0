//! `Mutex`: Go's `sync.Mutex` (not reentrant: locking twice from one task blocks forever, and
//! the deadlock oracle says so).

use std::borrow::Cow;
use std::cell::{Cell, RefCell, RefMut};
use std::fmt;
use std::future::poll_fn;
use std::ops::{Deref, DerefMut};
use std::task::Poll;

use super::{WaitList, describe, held_by};
use crate::context;
use crate::footprint::Resource;
use crate::race::SyncClock;
use crate::task::{set_wait, yield_now};

/// A mutual-exclusion lock around a value. Share it between tasks with `Rc<Mutex<T>>`.
pub struct Mutex<T> {
    name: Cow<'static, str>,
    holder: Cell<Option<u32>>,
    waiters: WaitList,
    value: RefCell<T>,
    /// What steps that lock or unlock touch.
    resource: Resource,
    /// Released by each unlock, acquired by each lock (the race detector).
    unlocked: SyncClock,
}

impl<T> Mutex<T> {
    /// An unnamed mutex.
    pub fn new(value: T) -> Self {
        Mutex::named("", value)
    }

    /// A mutex with a name for reports.
    pub fn named(name: impl Into<Cow<'static, str>>, value: T) -> Self {
        Mutex {
            name: name.into(),
            holder: Cell::new(None),
            waiters: WaitList::new(),
            value: RefCell::new(value),
            resource: Resource::new(),
            unlocked: SyncClock::new(),
        }
    }

    /// Locks, waiting while another task holds the lock. A scheduling point.
    pub async fn lock(&self) -> MutexGuard<'_, T> {
        yield_now().await;
        poll_fn(|cx| {
            if self.holder.get().is_none() {
                self.resource.write();
                self.holder.set(Some(context::current_task("Mutex::lock")));
                self.unlocked.acquire();
                return Poll::Ready(());
            }
            // Held: the unlock wakes this task.
            self.resource.check();
            self.waiters.register(cx.waker());
            let holder = self.holder.get().map(held_by).unwrap_or_default();
            set_wait("lock", format!("{}{holder}", describe("Mutex", &self.name)));
            Poll::Pending
        })
        .await;
        MutexGuard { mutex: self, value: Some(self.value.borrow_mut()) }
    }

    /// Locks if free, without waiting or yielding.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.resource.write();
        if self.holder.get().is_some() {
            return None;
        }
        self.holder.set(Some(context::current_task("Mutex::try_lock")));
        self.unlocked.acquire();
        Some(MutexGuard { mutex: self, value: Some(self.value.borrow_mut()) })
    }

    /// Whether some task holds the lock.
    pub fn is_locked(&self) -> bool {
        self.resource.read();
        self.holder.get().is_some()
    }

    /// The value, when no guard exists.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("name", &self.name)
            .field("holder", &self.holder.get())
            .finish()
    }
}

/// Access to a locked [`Mutex`]'s value; unlocks on drop.
pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
    value: Option<RefMut<'a, T>>,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value.as_ref().expect("guard holds the value until dropped")
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value.as_mut().expect("guard holds the value until dropped")
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.value = None;
        self.mutex.resource.write();
        self.mutex.unlocked.release();
        self.mutex.holder.set(None);
        self.mutex.waiters.wake_all();
    }
}
