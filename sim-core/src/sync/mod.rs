//! Synchronisation primitives with Go semantics, where Go code is being modelled.
//!
//! Every acquire, send and receive is a scheduling point: the operation first yields to the
//! strategy, then tries, then blocks. Releasing wakes every waiter and lets the strategy decide
//! who gets the resource next (Go's mutexes barge too), so search sees every order.
//! Blocked tasks record what they wait on, so a deadlock report reads
//! `task 1 (a): waiting to lock Mutex "b" held by task 2 (b)`.

use std::cell::RefCell;
use std::task::Waker;

pub mod channel;
mod mutex;
mod notify;
pub mod oneshot;
mod rwlock;
mod waitgroup;

pub use mutex::{Mutex, MutexGuard};
pub use notify::{Notified, Notify};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use waitgroup::WaitGroup;

/// The wakers of the tasks blocked on one resource.
#[derive(Default)]
pub(crate) struct WaitList {
    wakers: RefCell<Vec<Waker>>,
}

impl WaitList {
    pub const fn new() -> Self {
        WaitList { wakers: RefCell::new(Vec::new()) }
    }

    /// Adds `waker` unless it is already registered.
    pub fn register(&self, waker: &Waker) {
        let mut wakers = self.wakers.borrow_mut();
        if !wakers.iter().any(|registered| registered.will_wake(waker)) {
            wakers.push(waker.clone());
        }
    }

    /// Wakes every registered task, in registration order.
    pub fn wake_all(&self) {
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for waker in wakers {
            waker.wake();
        }
    }
}

/// `Kind "name"`, or just `Kind` when unnamed: how primitives appear in reports.
pub(crate) fn describe(kind: &str, name: &str) -> String {
    if name.is_empty() { kind.to_string() } else { format!("{kind} \"{name}\"") }
}

/// ` held by task N (name)`, for wait reasons.
pub(crate) fn held_by(task: u32) -> String {
    if task == crate::context::NO_TASK {
        return " held by setup".to_string();
    }
    let name = crate::context::with_state("held_by", |state| state.task_name(task).to_string());
    format!(" held by task {task} ({name})")
}
