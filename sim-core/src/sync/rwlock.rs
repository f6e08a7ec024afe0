//! `RwLock`: Go's `sync.RWMutex`. Readers share; a writer excludes everyone; and, as in Go, a
//! waiting writer blocks new readers, so a reader that re-locks while a writer waits deadlocks.

use std::borrow::Cow;
use std::cell::{Cell, Ref, RefCell, RefMut};
use std::fmt;
use std::future::poll_fn;
use std::ops::{Deref, DerefMut};
use std::task::Poll;

use super::{WaitList, describe, held_by};
use crate::context;
use crate::footprint::Resource;
use crate::race::SyncClock;
use crate::task::{set_wait, yield_now};

/// A reader-writer lock around a value. Share it between tasks with `Rc<RwLock<T>>`.
pub struct RwLock<T> {
    name: Cow<'static, str>,
    readers: Cell<u32>,
    writer: Cell<Option<u32>>,
    writers_waiting: Cell<u32>,
    waiters: WaitList,
    /// What steps that lock or unlock touch (taking a read lock counts readers: a write too).
    resource: Resource,
    value: RefCell<T>,
    /// Released by `Unlock` (acquired by every lock) and by `RUnlock` (acquired by `Lock`
    /// only), for the race detector.
    unlocked: SyncClock,
    read_unlocked: SyncClock,
}

impl<T> RwLock<T> {
    /// An unnamed lock.
    pub fn new(value: T) -> Self {
        RwLock::named("", value)
    }

    /// A lock with a name for reports.
    pub fn named(name: impl Into<Cow<'static, str>>, value: T) -> Self {
        RwLock {
            name: name.into(),
            readers: Cell::new(0),
            writer: Cell::new(None),
            writers_waiting: Cell::new(0),
            waiters: WaitList::new(),
            resource: Resource::new(),
            value: RefCell::new(value),
            unlocked: SyncClock::new(),
            read_unlocked: SyncClock::new(),
        }
    }

    /// Locks for reading (Go's `RLock`): waits while a writer holds or waits. A scheduling point.
    pub async fn read(&self) -> RwLockReadGuard<'_, T> {
        yield_now().await;
        poll_fn(|cx| {
            if self.writer.get().is_none() && self.writers_waiting.get() == 0 {
                self.resource.write();
                self.readers.set(self.readers.get() + 1);
                self.unlocked.acquire();
                return Poll::Ready(());
            }
            // The writer's unlock, or the waiting writer's lock or drop, wakes this task.
            self.resource.check();
            self.waiters.register(cx.waker());
            let why = match self.writer.get() {
                Some(writer) => held_by(writer),
                None => " (a writer is waiting)".to_string(),
            };
            set_wait("read-lock", format!("{}{why}", describe("RwLock", &self.name)));
            Poll::Pending
        })
        .await;
        RwLockReadGuard { lock: self, value: Some(self.value.borrow()) }
    }

    /// Locks for writing (Go's `Lock`): waits while anyone holds the lock. A scheduling point.
    pub async fn write(&self) -> RwLockWriteGuard<'_, T> {
        yield_now().await;
        let mut waiting = WaitingWriter { lock: self, counted: false };
        poll_fn(|cx| {
            if self.writer.get().is_none() && self.readers.get() == 0 {
                self.resource.write();
                waiting.stop();
                self.writer.set(Some(context::current_task("RwLock::write")));
                self.unlocked.acquire();
                self.read_unlocked.acquire();
                return Poll::Ready(());
            }
            // The first wait counts this writer (new readers then wait too): a write. Later
            // waits only check; the last unlock wakes this task.
            if waiting.counted {
                self.resource.check();
            } else {
                self.resource.write();
            }
            waiting.start();
            self.waiters.register(cx.waker());
            let why = match self.writer.get() {
                Some(writer) => held_by(writer),
                None => format!(" held by {} reader(s)", self.readers.get()),
            };
            set_wait("write-lock", format!("{}{why}", describe("RwLock", &self.name)));
            Poll::Pending
        })
        .await;
        RwLockWriteGuard { lock: self, value: Some(self.value.borrow_mut()) }
    }

    /// The number of read guards alive.
    pub fn readers(&self) -> u32 {
        self.resource.read();
        self.readers.get()
    }

    /// Whether a writer holds the lock.
    pub fn is_write_locked(&self) -> bool {
        self.resource.read();
        self.writer.get().is_some()
    }
}

impl<T> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLock")
            .field("name", &self.name)
            .field("readers", &self.readers.get())
            .field("writer", &self.writer.get())
            .finish()
    }
}

/// Counts a blocked writer in `writers_waiting` while it waits, including if its future is
/// dropped mid-wait (a timeout), so readers are never blocked by a writer that left.
struct WaitingWriter<'a, T> {
    lock: &'a RwLock<T>,
    counted: bool,
}

impl<T> WaitingWriter<'_, T> {
    fn start(&mut self) {
        if !self.counted {
            self.counted = true;
            self.lock.writers_waiting.set(self.lock.writers_waiting.get() + 1);
        }
    }

    fn stop(&mut self) {
        if self.counted {
            self.counted = false;
            self.lock.writers_waiting.set(self.lock.writers_waiting.get() - 1);
        }
    }
}

impl<T> Drop for WaitingWriter<'_, T> {
    fn drop(&mut self) {
        if self.counted {
            self.lock.resource.write();
            self.stop();
            self.lock.waiters.wake_all();
        }
    }
}

/// Shared access to an [`RwLock`]'s value; unlocks on drop.
pub struct RwLockReadGuard<'a, T> {
    lock: &'a RwLock<T>,
    value: Option<Ref<'a, T>>,
}

impl<T> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value.as_ref().expect("guard holds the value until dropped")
    }
}

impl<T> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.value = None;
        self.lock.resource.write();
        self.lock.read_unlocked.release();
        self.lock.readers.set(self.lock.readers.get() - 1);
        if self.lock.readers.get() == 0 {
            self.lock.waiters.wake_all();
        }
    }
}

/// Exclusive access to an [`RwLock`]'s value; unlocks on drop.
pub struct RwLockWriteGuard<'a, T> {
    lock: &'a RwLock<T>,
    value: Option<RefMut<'a, T>>,
}

impl<T> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value.as_ref().expect("guard holds the value until dropped")
    }
}

impl<T> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value.as_mut().expect("guard holds the value until dropped")
    }
}

impl<T> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.value = None;
        self.lock.resource.write();
        self.lock.unlocked.release();
        self.lock.writer.set(None);
        self.lock.waiters.wake_all();
    }
}
