//! What each step touched: the footprints that let a systematic search skip schedules that only
//! reorder independent steps (partial-order reduction, see [`crate::strategy::Dfs`]).
//!
//! Two steps of different tasks are *independent* when neither touches what the other writes:
//! running them in either order leaves the same state, so a search that has explored one order
//! need not explore the other. Every sim-core primitive records what it touches ([`crate::GoMap`],
//! [`crate::SyncMap`], the [`crate::sync`] primitives, timers, named random streams, spawns), and
//! so does the executor: a step always writes its own task (so waking a task depends on that
//! task's steps) and reads [`Resource::RUN`] (which [`crate::stop`] and the exit of the last
//! task that keeps the run alive write); and when polls cost virtual time
//! ([`crate::Config::poll_cost`]) every step writes the clock, so no two steps are independent.
//!
//! State that tasks share *outside* these primitives (an `Rc<RefCell<_>>` two tasks both use) is
//! invisible unless its owner says so with [`Resource::read`] and [`Resource::write`]. A search
//! with reduction is only as sound as these footprints: a missed write makes two dependent steps
//! look independent, and a schedule that reorders them is never run. Searches without reduction
//! (the default [`crate::strategy::Dfs`]) do not use footprints at all.
//!
//! A task that finds what it needs not ready (an empty channel, a held lock) and waits records
//! [`Resource::check`] instead: a read that lets the search treat a step that did nothing else
//! as changing nothing. Wakes are recorded only when they make a waiting task runnable.
//!
//! Footprints are recorded only while a strategy asks for them
//! ([`crate::Strategy::wants_footprints`]); otherwise [`Resource::read`] is a thread-local flag
//! test.
//!
//! ```
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use sim_core::footprint::Resource;
//! use sim_core::{Simulation, spawn};
//!
//! // A counter two tasks share through a plain Rc<Cell>: say what each step does to it.
//! let mut sim = Simulation::default();
//! sim.run(1, || {
//!     let counter = Rc::new((Cell::new(0), Resource::new()));
//!     for worker in 0..2 {
//!         let counter = counter.clone();
//!         spawn(format!("worker-{worker}"), async move {
//!             counter.1.write();
//!             counter.0.set(counter.0.get() + 1);
//!         });
//!     }
//! });
//! ```

use std::fmt;

use crate::context::{self, CTX, NO_TASK};
use crate::rng::{fnv1a, fnv1a_extend, mix64};

/// Kinds of resource, in the top byte of the id so that ids of different kinds never collide.
const TASK: u64 = 1 << 56;
const FRESH: u64 = 2 << 56;
const NAMED: u64 = 3 << 56;
const DERIVED: u64 = 4 << 56;
const LOW: u64 = (1 << 56) - 1;

/// Something steps touch: a primitive, a piece of shared state, a task, the clock.
///
/// Ids are stable across runs and across reorderings of independent steps: a fresh resource is
/// named by the task that created it and how many resources that task had created before, not
/// by a global counter.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Resource(u64);

impl fmt::Debug for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Resource({:#x})", self.0)
    }
}

impl Resource {
    /// The virtual clock. Steps read it through [`crate::now`] and timers. When polls cost
    /// virtual time, each step advances it and timers fire between steps, so every step writes
    /// it and no two steps are independent: reduction needs polls that cost nothing
    /// (`Config::with_poll_cost(Duration::ZERO, Duration::ZERO)`), where the clock moves only
    /// when every task waits.
    pub const CLOCK: Resource = Resource(NAMED | 1);
    /// The task table: written by a spawn (task ids follow spawn order).
    pub const TASKS: Resource = Resource(NAMED | 2);
    /// The count of tasks that keep the run alive, as a counter whose only observable event is
    /// reaching zero. The exit of a task spawned with [`crate::spawn`] that leaves two or more
    /// such tasks alive reads it: two such exits leave two or more in either order, so neither
    /// can be the last, and they commute. An exit that leaves one or none writes it (it is, or
    /// decides, the last one), and so does a spawn of such a task.
    pub const ALIVE: Resource = Resource(NAMED | 4);
    /// Whether the run goes on: read by every step; written by [`crate::stop`] and by the exit
    /// of the last task that kept the run alive (after which nothing runs).
    pub const RUN: Resource = Resource(NAMED | 3);
    /// Read by every exit and written by nothing: it conflicts with nothing, but marks the step
    /// that finished a task, which is never a wait ([`Resource::check`]).
    pub(crate) const EXIT: Resource = Resource(NAMED | 5);

    /// A fresh resource, for a piece of shared state created now (by the running task, or by the
    /// setup). Outside a simulation, every call returns one shared id, which only makes steps
    /// look more dependent than they are.
    pub fn new() -> Resource {
        let fresh = CTX.try_with(|ctx| {
            if !ctx.active.get() {
                return None;
            }
            let task = ctx.current.get();
            let mut state = ctx.state.borrow_mut();
            let counter = match state.tasks.get_mut(task as usize) {
                Some(meta) => &mut meta.resources,
                None => &mut state.setup_resources,
            };
            let index = *counter;
            *counter += 1;
            let creator = if task == NO_TASK { 0 } else { u64::from(task) + 1 };
            Some(Resource(FRESH | ((creator << 32 | index) & LOW)))
        });
        fresh.ok().flatten().unwrap_or(Resource(FRESH | LOW))
    }

    /// The resource named `label`, the same in every run: for global state such as a named random
    /// stream.
    pub fn named(label: &str) -> Resource {
        Resource(NAMED | (mix64(fnv1a(label.as_bytes())) & LOW) | 0x100)
    }

    /// A part of this resource named `part` (an object in a store, a key in a map). Parts of one
    /// resource are independent of each other, but not of the resource itself unless the code
    /// that uses them records only parts.
    pub fn part(self, part: &str) -> Resource {
        Resource(DERIVED | (mix64(fnv1a_extend(self.0, part.as_bytes())) & LOW))
    }

    /// Task `task`: its steps write it, and so does anything that wakes it.
    pub(crate) fn task(task: u32) -> Resource {
        Resource(TASK | u64::from(task))
    }

    /// Records that the running step reads this resource.
    #[inline]
    pub fn read(self) {
        record(Access { resource: self, write: false, check: false });
    }

    /// Records that the running step writes this resource.
    #[inline]
    pub fn write(self) {
        record(Access { resource: self, write: true, check: false });
    }

    /// Records that the running step looked at this resource, found it not ready, and is about
    /// to wait on it (a lock held, a queue empty, a deadline not reached). A waiting primitive
    /// records this on its pending path *instead of* a read or a write, under one contract:
    /// whoever later changes the resource so that the check would pass wakes the waiter.
    ///
    /// It is a read, with one difference for [`crate::strategy::Dfs`]'s reduction: a step that
    /// did nothing but such checks before its task waited (a *pure wait*) changes no state, so
    /// the search need not try running later steps before it. Running the step that wakes the
    /// task first makes the check pass, and the task then does in one step what it does anyway
    /// after its wake.
    #[inline]
    pub fn check(self) {
        record(Access { resource: self, write: false, check: true });
    }

    /// Whether this is the resource of a task (written by its steps and by its wakes).
    pub(crate) fn task_of(self) -> Option<u32> {
        (self.0 & !LOW == TASK).then_some((self.0 & LOW) as u32)
    }
}

impl Default for Resource {
    fn default() -> Self {
        Resource::new()
    }
}

/// One access of a step: a resource, read or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Access {
    /// What was touched.
    pub resource: Resource,
    /// Whether it was written (else only read).
    pub write: bool,
    /// Whether it was only checked before the task waited on it ([`Resource::check`]); never
    /// with `write`.
    pub check: bool,
}

/// Whether two steps with these footprints are dependent: one writes what the other touches.
/// Both lists are sorted by resource, with one
/// entry per resource (as [`crate::Strategy::step_done`] receives them).
pub fn conflicts(a: &[Access], b: &[Access]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].resource.cmp(&b[j].resource) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                if a[i].write || b[j].write {
                    return true;
                }
                i += 1;
                j += 1;
            }
        }
    }
    false
}

/// Sorts `accesses` by resource and merges duplicates (a write wins over a read, a read over a
/// check).
pub(crate) fn normalize(accesses: &mut Vec<Access>) {
    accesses.sort_unstable();
    accesses.dedup_by(|later, earlier| {
        if later.resource == earlier.resource {
            earlier.write |= later.write;
            earlier.check = earlier.check && later.check && !earlier.write;
            true
        } else {
            false
        }
    });
}

#[inline]
fn record(access: Access) {
    let _ = CTX.try_with(|ctx| {
        if ctx.tracking.get() && ctx.current.get() != NO_TASK {
            ctx.footprint.borrow_mut().push(access);
        }
    });
}

/// Records a wake of `task` by the running step (a no-op outside a step or when not tracking).
/// Only a wake that makes a waiting task runnable counts: waking a runnable task changes
/// nothing.
#[inline]
pub(crate) fn record_wake(ctx: &context::Context, task: u32) {
    if ctx.tracking.get() && ctx.current.get() != NO_TASK && !ctx.runq.borrow().is_queued(task) {
        let access = Access { resource: Resource::task(task), write: true, check: false };
        ctx.footprint.borrow_mut().push(access);
    }
}
